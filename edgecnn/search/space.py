"""The search space: which candidates exist, and which weights each one starts from.

A *candidate* is one ``.tflite`` a user could ship: (family, width, resolution,
precision). Candidates that share (family, width, resolution) share one training: a
*group* is one normal edgecnn run (:func:`edgecnn.sweep.plan` builds its RunConfig) that
exports every surviving precision of the group.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgecnn.errors import UserError, suggest

SEARCH_PRECISIONS = ("float32", "float16", "dynamic", "int8")  # post-training: one training serves all
WEIGHT_POLICIES = ("auto", "imagenet", "none")


@dataclass
class SearchSpec:
    """What to search and under which limits.

    ``budget_ms``: the latency every returned model must meet on the target;
    ``max_size_kb``: an optional file-size limit; ``time_budget_s``: the wall time of the
    whole search (measuring, then training; no run starts after it); ``epochs``: the first
    rung's epochs, multiplied by ``eta`` at each later rung, of which the best
    ``1/eta`` groups are kept; ``head_epochs``: the most epochs of the frozen-base phase of a
    pretrained candidate's first rung (``None``: the pipeline's, which stops when validation
    loss stops improving; the phase trains on features computed once, so it is cheap);
    ``final``: train the best group once more in full, with the pipeline's own schedule
    (:func:`edgecnn.search.train.final_training`).
    ``base``: further RunConfig settings as nested dicts.
    """

    families: list
    budget_ms: float
    data: str = "digits"
    widths: list = field(default_factory=lambda: [None])
    family_widths: dict = field(default_factory=dict)
    sizes: list = field(default_factory=lambda: [None])
    precisions: list = field(default_factory=lambda: ["float32", "int8"])
    max_size_kb: float | None = None
    time_budget_s: float = 1800.0
    epochs: int = 2
    eta: int = 3
    rungs: int = 3
    head_epochs: int | None = None
    final: bool = True
    weights: str = "auto"
    threads: int = 1
    device: str | None = None
    device_command: str | None = None
    latency_table: str | None = None
    measure: bool | None = None
    base: dict = field(default_factory=dict)
    out: str = "runs/search"

    @property
    def measured(self) -> bool:
        """Whether latency is measured (here or through the device command), not only predicted."""
        if self.measure is not None:
            return self.measure
        return self.latency_table is None or self.device_command is not None


@dataclass
class Candidate:
    """One shippable ``.tflite``: a group's training exported at one precision."""

    model: str
    alpha: float | None
    size: int | None
    precision: str

    @property
    def group(self) -> str:
        from edgecnn.settings.run_config import run_name

        return run_name(self.model, self.alpha, self.size)

    @property
    def name(self) -> str:
        return f"{self.group}-{self.precision}"

    @property
    def label(self) -> str:
        width = "" if self.alpha is None else f" a{self.alpha:g}"
        size = "" if self.size is None else f" {self.size}px"
        return f"{self.model}{width}{size} {self.precision}"


def check_spec(spec: SearchSpec) -> None:
    """Every user mistake the search can see before it measures anything, as one line."""
    from edgecnn.models import list_models

    if not spec.families:
        raise UserError("the search needs at least one family (--families mobilenet,...)")
    known = list_models()
    for name in spec.families:
        if name not in known:
            raise UserError(f"unknown family {name!r}{suggest(name, known)}; run 'edgecnn list' to see every model")
    if not spec.budget_ms or spec.budget_ms <= 0:
        raise UserError(f"--budget-ms must be a positive number of milliseconds, got {spec.budget_ms}")
    if spec.max_size_kb is not None and spec.max_size_kb <= 0:
        raise UserError(f"--max-size-kb must be positive, got {spec.max_size_kb}")
    if spec.time_budget_s <= 0:
        raise UserError(f"--time-budget must be positive, got {spec.time_budget_s} s")
    for p in spec.precisions:
        if p not in SEARCH_PRECISIONS:
            raise UserError(f"unknown precision {p!r}{suggest(p, SEARCH_PRECISIONS)}; "
                            f"choose from {', '.join(SEARCH_PRECISIONS)}")
    for name in spec.family_widths:
        if name not in spec.families:
            raise UserError(f"--widths-of {name}: not one of --families {', '.join(spec.families)}")
    if not spec.precisions:
        raise UserError("the search needs at least one precision (--precisions float32,int8)")
    if spec.weights not in WEIGHT_POLICIES:
        raise UserError(f"--weights must be one of {', '.join(WEIGHT_POLICIES)}, got {spec.weights!r}")
    if spec.eta < 2 or spec.epochs < 1 or spec.rungs < 1:
        raise UserError("successive halving needs --eta >= 2, --epochs >= 1 and --rungs >= 1")
    _check_paths(spec)


def _check_paths(spec: SearchSpec) -> None:
    """The files the search reads: its data and the latency table."""
    if str(spec.data) != "digits" and not Path(str(spec.data)).expanduser().exists():
        raise UserError(f"--data {spec.data}: no such folder or file")
    if spec.latency_table is not None and not Path(spec.latency_table).is_file():
        raise UserError(
            f"--latency-table {spec.latency_table}: no such file (build one with edgecnn-device bench --table)"
        )


def candidates(spec: SearchSpec) -> list:
    """Every (family, width, resolution, precision) of the spec, widths only where the family
    has a width multiplier (the others appear once, at their own width)."""
    from edgecnn.models import model_info

    check_spec(spec)
    out, seen = [], set()
    for model in spec.families:
        widths = spec.family_widths.get(model) or (spec.widths if "alpha" in model_info(model).arguments else [None])
        for alpha in widths:
            for size in spec.sizes:
                for precision in spec.precisions:
                    c = Candidate(model, None if alpha is None else float(alpha), size, precision)
                    if c.name not in seen:
                        seen.add(c.name)
                        out.append(c)
    return out


def start_weights(spec: SearchSpec, cand: Candidate) -> tuple:
    """``(weights, label)``: what the candidate's first rung starts from, and how the table
    names it. ``auto``: Keras' ImageNet weights where the family has them (registry
    ``pretrained``) and the file is in Keras' cache, at this resolution or another one
    (the convolution weights do not depend on the input size, so the 224 px file serves
    128 px), scratch otherwise; ``imagenet``: the published file wherever the family has
    one (downloaded when missing); ``none``: scratch everywhere."""
    from edgecnn.models import model_info
    from edgecnn.models._weights import imagenet_file, keras_cache_dir

    entry = model_info(cand.model)
    if spec.weights == "none" or not entry.pretrained:
        return None, "scratch"
    args = {"alpha": cand.alpha if cand.alpha is not None else 1.0}
    try:
        name = imagenet_file(entry, {**args, "input_shape": (cand.size or 224, cand.size or 224, 3)}, False)[0]
        fallback = imagenet_file(entry, {**args, "input_shape": (224, 224, 3)}, False)[0]
    except UserError:
        return None, "scratch (no published weights at this width)"
    if spec.weights == "imagenet" or (keras_cache_dir() / name).is_file():
        return "imagenet", "imagenet"
    if (keras_cache_dir() / fallback).is_file():
        return str(keras_cache_dir() / fallback), "imagenet (224 px file)"
    return None, "scratch (ImageNet file not in Keras' cache)"


def over_limits(spec: SearchSpec, record: dict) -> str | None:
    """Why a measured candidate is pruned before training, or ``None`` when it fits."""
    if record.get("status") == "skipped":
        return f"no faster than {record['slower_than']} (over budget)"
    if record.get("status") != "ok":
        return "could not be built or timed"
    if record["latency_ms"] > spec.budget_ms:
        return f"{record['latency_ms']:.2f} ms > {spec.budget_ms:g} ms budget"
    if spec.max_size_kb is not None and record["size_bytes"] > spec.max_size_kb * 1024:
        return f"{record['size_bytes'] / 1024:.0f} KB > {spec.max_size_kb:g} KB"
    return None
