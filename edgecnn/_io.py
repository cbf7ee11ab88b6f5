"""Atomic file writes and process-level output hygiene.

Every file edgecnn produces is written to a temporary name in the same folder and moved
into place with :func:`os.replace`, so a reader (or a run killed half-way) never sees a
half-written file where a finished one is expected.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path``; move it onto ``path`` only on success.

    Example:
        >>> with atomic_path("out/model.tflite") as tmp:  # doctest: +SKIP
        ...     Path(tmp).write_bytes(b"...")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name keeps the real suffixes: Keras picks the format from them
    # (".weights.h5" is the Keras 3 weights format, ".h5" the legacy one).
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{''.join(path.suffixes)}", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; finished files get the usual mode
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (an error names ``path``, a full disk included)."""
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:  # write() and fsync() name no file
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    return Path(path)


def write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def _json_default(obj):
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover - numpy is always there in practice
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def write_json(path, obj) -> Path:
    """Write ``obj`` as indented JSON, atomically (numpy scalars and paths allowed)."""
    return write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def sha256_file(path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


@contextlib.contextmanager
def quiet_native_stderr(enabled: bool = True):
    """Silence what native code (TensorFlow, MLIR, LiteRT) writes straight to fd 2.

    What was written is kept and re-emitted if the block raises, so a real failure is
    never hidden. Python-level ``sys.stderr`` writes are unaffected.
    """
    if not enabled or os.environ.get("EDGECNN_VERBOSE"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (some notebooks)
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            captured = sink.read().decode("utf-8", "replace")
            if captured.strip():
                sys.stderr.write(captured[-4000:])
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


LOCK_NAME = ".lock"
_HELD: dict = {}  # resolved folder -> [open lock file, depth]: the same process may nest run_lock


def _unwritable(path, exc: OSError):
    from edgecnn.errors import UserError

    reason = exc.strerror or type(exc).__name__
    return UserError(f"cannot write to {path}: {reason}; choose a writable folder (--out)")


@contextlib.contextmanager
def run_lock(folder, command: str | None = None):
    """Hold the advisory lock ``<folder>/.lock`` for the duration of the block.

    One run per folder: a second process asking for the same folder gets a
    :class:`~edgecnn.errors.UserError` naming the holder (pid, host, command, start time),
    written into the lock file by the holder. The lock is ``fcntl.flock``: released by the
    kernel when the holder exits, however it exits, so a killed run never leaves the folder
    locked. The same process may nest the lock (a recipe holds it around the pipeline).
    The folder is created; a folder that cannot be created or written is one
    :class:`~edgecnn.errors.UserError` too. Where ``fcntl`` does not exist (Windows) the
    block runs without a lock.

    Example:
        >>> with run_lock("runs/lenet5"):  # doctest: +SKIP
        ...     optimize(cfg)
    """
    import socket
    import time

    from edgecnn.errors import UserError

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(folder, exc) from None
    key = str(folder.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield folder
        finally:
            _HELD[key][1] -= 1
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield folder
        return
    path = folder / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise _unwritable(folder, exc) from None
    handle = os.fdopen(fd, "r+", encoding="utf-8")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = " ".join(handle.read(2000).split()) or "another process"
        handle.close()
        raise UserError(
            f"run folder {folder} is in use by {holder}; wait for it to finish or choose another --out"
        ) from None
    try:
        cmd = command or " ".join(sys.argv)
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}: {cmd[:300]}\n")
        handle.flush()
    except OSError as exc:
        handle.close()
        raise _unwritable(folder, exc) from None
    _HELD[key] = [handle, 1]
    try:
        yield folder
    finally:
        del _HELD[key]
        try:
            handle.seek(0)
            handle.truncate()  # the holder's line goes with the lock
        except OSError:
            pass
        handle.close()  # closing releases the flock
