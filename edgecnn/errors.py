"""The one exception type for a user's mistake.

A :class:`UserError` carries one line that says what is wrong and how to fix it. The CLI
prints it and exits with code 2, without a traceback; anything else is a bug and keeps its
traceback. The device side's own errors (``ModelLoadError``, ``RuntimeUnavailable``,
``ImageError``) subclass it, so ``except UserError`` catches them all.
"""

import difflib


class UserError(Exception):
    """A mistake in what the user asked for: bad flag, unknown model, missing file..."""

    exit_code = 2


def close_matches(name: str, choices, n: int = 3) -> list:
    """The ``choices`` closest to ``name``, best first (at most ``n``; may be empty).

    The one "did you mean" matcher: :func:`suggest` formats its answer for a message.

    Example:
        >>> close_matches("epoch", ["epochs", "batch_size"])
        ['epochs']
    """
    return difflib.get_close_matches(str(name), [str(c) for c in choices], n=n, cutoff=0.5)


def suggest(name: str, choices, n: int = 3) -> str:
    """Return ``" (did you mean: a, b?)"`` for the closest ``choices``, or ``""``.

    Example:
        >>> suggest("mobilenet_v4", ["mobilenet_v2", "mobilenet_v3_small"])
        ' (did you mean: mobilenet_v2, mobilenet_v3_small?)'
    """
    close = close_matches(name, choices, n=n)
    return f" (did you mean: {', '.join(close)}?)" if close else ""


def usage_line(exc) -> str | None:
    """A click usage error (bad flag value, unknown option) as one ``error:`` line, or
    ``None`` for the errors that show help instead (a command run without arguments).

    Example:
        >>> import click
        >>> usage_line(click.BadParameter("100000 is too many", param_hint="'--threads'"))
        "error: Invalid value for '--threads': 100000 is too many"
    """
    import click

    if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):
        return None
    hint = f" (see {exc.ctx.command_path} --help)" if getattr(exc, "ctx", None) is not None else ""
    return f"error: {exc.format_message()}{hint}"
