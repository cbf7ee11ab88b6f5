"""The model registry: every architecture is a builder function registered by name.

Modelled on timm's ``_registry.py``: ``@register_model`` keys a builder by its function
name (or an explicit ``name``), :func:`list_models` filters with a glob, and
:func:`create_model` drops keyword arguments that are ``None`` so that a CLI default never
overrides a model's own default.

Every builder takes the Keras Applications arguments::

    builder(input_shape=None, alpha=1.0, include_top=True, weights=None, input_tensor=None,
            pooling=None, classes=1000, classifier_activation="softmax", dropout=..., **kw)

A variant is a function of a line or two that passes them on to its family's general
builder (``def resnet50(**kwargs): return resnet(50, **kwargs)``); what the registry knows
about it (canonical input, preferred resolution, parameters and MACs) sits in its
``register_model(...)`` call, as :class:`ModelEntry` fields; its published weights are
declared in its family module (``PRETRAINED``, :class:`~edgecnn.models._pretrained.KerasWeights`)
and registered with it.
"""

from __future__ import annotations

import fnmatch
import inspect
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from edgecnn.errors import UserError, suggest

if TYPE_CHECKING:
    from edgecnn.models._pretrained import KerasWeights


@dataclass(frozen=True)
class ModelEntry:
    """What the registry knows about one model name.

    Attributes:
        name: registry key (``mobilenet``, ``resnet18``...).
        builder: the function that builds the ``keras.Model``.
        family: the paper's family (``mobilenet_v1``); models of one family share defaults.
        input_shape: the canonical input (224x224x3 for ImageNet models).
        min_size: smallest spatial input the architecture accepts.
        small_size: the resolution used for small built-in data such as digits.
        train: per-family training defaults (``epochs``, ``learning_rate``...).
        aliases: other names that resolve to this entry.
        resolution: the input size the architecture was designed for, when it declares
            one: an ``int`` (EfficientNet-B3: 300), or a function of the builder's
            arguments (``efficientnet``: ``phi`` -> 224 * 1.15**phi). ``None`` (most
            models): the canonical ``input_shape``, and no :meth:`resolution_note`.
        classes: the canonical classifier size (1000; 10 for the one-channel models).
        params: trainable parameters at the canonical ``input_shape`` and ``classes``
            (default arguments), as :func:`~edgecnn.models.count_params` counts them.
        macs: MACs at that setting, as :func:`~edgecnn.models.count_macs` counts them.
            ``edgecnn list`` prints ``params`` and ``macs`` without building the model;
            ``tests/test_registry_figures.py`` keeps them equal to what the builder makes.
        pretrained_cfg: the published ImageNet weights that fit, as the family module
            declares them in its ``PRETRAINED`` table (file names, URL, hashes, input
            convention), or ``None``; ``create_model(..., weights="imagenet")`` loads them
            (:mod:`edgecnn.models._weights`).
    """

    name: str
    builder: Callable
    family: str
    input_shape: tuple = (224, 224, 3)
    min_size: int = 32
    small_size: int = 32
    train: dict = field(default_factory=dict)
    aliases: tuple = ()
    resolution: int | Callable[..., int] | None = None
    classes: int = 1000
    params: int | None = None
    macs: int | None = None
    pretrained_cfg: KerasWeights | None = None

    @property
    def pretrained(self) -> str | None:
        """The Keras Applications model whose published weights fit (``"ResNet50"``), or ``None``."""
        return self.pretrained_cfg.app if self.pretrained_cfg is not None else None

    @property
    def channels(self) -> int:
        return int(self.input_shape[-1])

    @property
    def doc(self) -> str:
        return (inspect.getdoc(self.builder) or "").split("\n")[0].replace("``", "")

    @property
    def arguments(self) -> frozenset:
        """The keyword arguments the builder accepts (see :func:`builder_arguments`)."""
        return builder_arguments(self.builder)

    def preferred_resolution(self, **args) -> int:
        """The input size the architecture was designed for, given builder ``args``.

        The entry's ``resolution`` (a number, or a function of ``args``: EfficientNet's
        ``phi``); otherwise the canonical input size.

        Example:
            >>> model_info("efficientnet").preferred_resolution(phi=1.5)
            276
        """
        if callable(self.resolution):
            return int(self.resolution(**args))
        return int(self.input_shape[0] if self.resolution is None else self.resolution)

    def resolution_note(self, image_size: int, **args) -> str | None:
        """A line saying the run's input differs from the resolution the builder declares
        (``preferred_resolution``), or ``None``.

        Example:
            >>> model_info("efficientnet").resolution_note(32, phi=1.5)
            'efficientnet phi 1.5 is designed for 276x276 input; training at 32x32 (set --image-size 276 to match)'
        """
        if self.resolution is None:
            return None
        wanted = self.preferred_resolution(**args)
        if wanted == int(image_size):
            return None
        label = " ".join([self.name, *(f"{k} {v}" for k, v in args.items())])
        return (
            f"{label} is designed for {wanted}x{wanted} input; training at {image_size}x{image_size} "
            f"(set --image-size {wanted} to match)"
        )


def builder_arguments(builder: Callable) -> frozenset:
    """Names of the keyword arguments ``builder`` accepts.

    Its own named parameters and, when it passes ``**kwargs`` on to a public builder of its
    module (``resnet18`` -> ``resnet``, ``vgg11`` -> ``vgg``), that builder's too, except
    those before ``input_shape`` (``depth``: the variant fixes them).

    Example:
        >>> sorted(builder_arguments(lambda classes=10, alpha=1.0, **kwargs: None))
        ['alpha', 'classes']
    """
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names: set = set()
    todo, seen = [builder], set()
    while todo:
        fn = todo.pop()
        if fn in seen:
            continue
        seen.add(fn)
        params = list(inspect.signature(fn).parameters.values())
        if fn is not builder and "input_shape" in (p.name for p in params):
            params = params[[p.name for p in params].index("input_shape") :]
        names |= {p.name for p in params if p.kind in named}
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            continue
        try:
            refs = inspect.getclosurevars(fn)
        except (TypeError, ValueError):
            continue
        for target in {**refs.nonlocals, **refs.globals}.values():
            if (
                inspect.isfunction(target)
                and not target.__name__.startswith("_")
                and target.__module__ == fn.__module__
                and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(target).parameters.values())
            ):
                todo.append(target)
    return frozenset(names)


# Filled by the family files as edgecnn.models imports them (importing this module imports
# the package, hence every family, first).
_MODELS: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


def register_model(
    fn: Callable | None = None,
    *,
    name: str | None = None,
    family: str | None = None,
    input_shape: tuple = (224, 224, 3),
    min_size: int = 32,
    small_size: int | None = None,
    train: dict | None = None,
    aliases: tuple = (),
    resolution: int | Callable[..., int] | None = None,
    classes: int | None = None,
    params: int | None = None,
    macs: int | None = None,
    pretrained: KerasWeights | None = None,
):
    """Register a model builder under its function name (lower-cased) or ``name``.

    The keyword arguments are the :class:`ModelEntry` fields (``pretrained`` is its
    ``pretrained_cfg``: an entry of the family module's ``PRETRAINED`` table); ``classes``
    defaults to 10 for a one-channel ``input_shape`` and 1000 otherwise.

    Example:
        >>> @register_model(family="toy", input_shape=(32, 32, 1))  # doctest: +SKIP
        ... def toy_net(input_shape=None, alpha=1.0, classes=10, **kwargs): ...
    """

    def wrap(builder):
        key = (name or builder.__name__).lower()
        if key in _MODELS or key in _ALIASES:
            raise ValueError(f"model {key!r} is registered twice")
        entry = ModelEntry(
            name=key,
            builder=builder,
            family=family or key,
            input_shape=tuple(input_shape),
            min_size=min_size,
            small_size=small_size or max(32, min_size),
            train=dict(train or {}),
            aliases=tuple(aliases),
            resolution=resolution,
            classes=int(classes or (10 if int(input_shape[-1]) == 1 else 1000)),
            params=params,
            macs=macs,
            pretrained_cfg=pretrained,
        )
        _MODELS[key] = entry
        for alias in aliases:
            _ALIASES[alias.lower()] = key
        return builder

    return wrap(fn) if fn is not None else wrap


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a glob ``pattern``, sorted.

    Example:
        >>> list_models("resnet*")  # doctest: +SKIP
        ['resnet101', 'resnet152', 'resnet18', 'resnet34', 'resnet50']
    """
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern.lower()))


def pretrained_models() -> list[str]:
    """Registered names whose entry names published ImageNet weights (``pretrained``).

    Example:
        >>> "resnet50" in pretrained_models() and "resnet18" not in pretrained_models()
        True
    """
    return sorted(n for n, e in _MODELS.items() if e.pretrained)


def model_info(name: str) -> ModelEntry:
    """Return the :class:`ModelEntry` for ``name`` (or an alias); unknown names raise
    :class:`~edgecnn.errors.UserError` listing the closest registered names."""
    key = str(name).lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _MODELS:
        raise UserError(
            f"unknown model {name!r}{suggest(key, list(_MODELS) + list(_ALIASES))}; "
            "run 'edgecnn list' to see every model"
        )
    return _MODELS[key]


def create_model(name: str, **kwargs):
    """Build a registered model; keyword arguments that are ``None`` are dropped.

    ``weights``: ``None`` (random initialisation), ``"imagenet"`` (Keras Applications'
    published weights, for the models whose entry names one in ``pretrained``), or the
    path of a weight file (a Keras Applications ``.h5``, or one an edgecnn model of the same
    family saved); see :mod:`edgecnn.models._weights`.

    Example:
        >>> m = create_model("mobilenet", alpha=0.25, input_shape=(32, 32, 3), classes=10)
        >>> m.output_shape
        (None, 10)
    """
    entry = model_info(name)
    weights = kwargs.pop("weights", None)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    unknown = sorted(set(kwargs) - entry.arguments)
    if unknown:
        raise UnexpectedArgument(unknown_arguments_message(entry, unknown))
    if weights is None or (isinstance(weights, str) and weights.lower() in ("none", "")):
        return entry.builder(**kwargs)
    if isinstance(weights, str) and weights.lower() == "imagenet" and not entry.pretrained:
        raise UserError(f"{entry.name} has no published ImageNet weights; these have: {', '.join(pretrained_models())}")
    from edgecnn.models._weights import build_with_weights

    return build_with_weights(entry, weights, kwargs)


class UnexpectedArgument(UserError, TypeError):
    """A keyword argument the builder does not take: a :class:`~edgecnn.errors.UserError`
    (one line in the CLI) that is also the ``TypeError`` Python raises for one."""


def unknown_arguments_message(entry: ModelEntry, unknown, hide=()) -> str:
    """One line naming the arguments ``entry``'s builder does not take, and what it takes
    (less the names in ``hide``).

    Example:
        >>> unknown_arguments_message(model_info("mobilenet_v2"), ["phi"])  # doctest: +SKIP
        "unexpected argument 'phi' for mobilenet_v2; it takes: alpha, classes, ..."
    """
    names = ", ".join(repr(u) for u in unknown)
    plural = "s" if len(unknown) > 1 else ""
    takes = sorted(entry.arguments - set(hide))
    hint = suggest(unknown[0], takes)
    return f"unexpected argument{plural} {names} for {entry.name}{hint}; it takes: {', '.join(takes)}"
