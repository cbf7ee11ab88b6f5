"""The efficient zoo on the built-in digits: MobileNetV3-Small float and QAT int8 targets.

The issue's targets: MobileNetV3-Small trained on digits from its family defaults reaches
float test accuracy >= 0.95, and after quantization-aware training its int8 ``.tflite``
stays within 1 point of the QAT Keras model. Also a quick run of other efficient models
(``--quick``, few epochs) to show they train from the same pipeline, with the same QAT check.

Steps, all through the library the CLI calls:

1. ``edgecnn optimize mobilenet_v3_small --int8 --out runs/v3s`` (:func:`edgecnn.pipeline.optimize`
   with the flags turned into a RunConfig by :func:`edgecnn.cli.optimize.config_from_flags`);
   a run folder already trained with the same settings is reused, not retrained.
2. QAT: :func:`edgecnn.optimize.qat.quantize_model` on the trained model,
   :func:`edgecnn.train.fit` for a fifth of the training epochs at a tenth of its learning
   rate (the defaults of the pipeline's ``qat`` stage), then :func:`edgecnn.tflite.convert.convert`
   to int8 and :func:`edgecnn.device.evaluate.evaluate_tflite` on the test split.

Usage: ``PYTHONPATH=. python benchmarks/efficient_digits.py [--out runs/v3s]
[--quick mobilenet_v2 efficientnet_b0 shufflenet_v2 --quick-epochs 5]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._results import update_section  # noqa: E402
from edgecnn.cli.optimize import config_from_flags  # noqa: E402
from edgecnn.pipeline import optimize  # noqa: E402


def _row(metrics: dict, precision: str) -> dict:
    return next(r for r in metrics["rows"] if r["variant"] == precision)


def qat_int8(run_dir: Path, metrics: dict, epochs: int | None = None, lr: float | None = None) -> dict:
    """Quantization-aware fine-tuning of the run's trained model, then int8: Keras vs ``.tflite`` accuracy.

    Example:
        >>> qat_int8(Path("runs/v3s"), metrics)["delta_points"]  # doctest: +SKIP
        0.0
    """
    from edgecnn._tf import keras
    from edgecnn.device.evaluate import evaluate_tflite
    from edgecnn.models import batch_norm_defaults, create_model, model_info
    from edgecnn.optimize.qat import quantize_model
    from edgecnn.pipeline import load_run_data
    from edgecnn.settings.run_config import RunConfig
    from edgecnn.tflite.convert import convert
    from edgecnn.train import evaluate_keras, fit

    cfg = RunConfig.from_dict(metrics["config"])
    entry = model_info(cfg.model.name)
    data = load_run_data(cfg, entry)
    epochs = epochs or max(1, cfg.train.epochs // 5)
    lr = lr or 0.1 * cfg.train.learning_rate
    keras.utils.set_random_seed(cfg.train.seed)
    with batch_norm_defaults():
        model = create_model(
            entry.name,
            alpha=cfg.model.alpha,
            input_shape=data.input_shape,
            classes=data.num_classes,
            **cfg.model.args,
        )
    model.load_weights(run_dir / "train" / "weights.h5")
    float_acc = evaluate_keras(model, data)
    qat = quantize_model(model)
    t0 = time.time()
    print(f"QAT: {epochs} epochs at lr {lr:g}", flush=True)
    fit(qat, data, cfg.train, out_dir=run_dir / "qat_bench", epochs=epochs, learning_rate=lr)
    qat_seconds = time.time() - t0
    qat_acc = evaluate_keras(qat, data)
    path = convert(
        qat,
        run_dir / "qat_int8.tflite",
        "int8",
        representative=data.representative(cfg.convert.calibration_samples, seed=cfg.data.seed),
    )
    tflite_acc = evaluate_tflite(path, data.normalized("test"), data.y["test"])["accuracy"]
    return {
        "float_keras": float_acc,
        "qat_keras": qat_acc,
        "qat_int8_tflite": tflite_acc,
        "delta_points": 100 * (tflite_acc - qat_acc),
        "epochs": epochs,
        "learning_rate": lr,
        "seconds": qat_seconds,
        "test_images": int(len(data.y["test"])),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/v3s", help="run folder of the MobileNetV3-Small run")
    parser.add_argument("--quick", nargs="*", default=[], help="other models to train briefly on digits")
    parser.add_argument("--quick-epochs", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print the results, leave RESULTS.md alone")
    args = parser.parse_args(argv)

    started = time.time()
    out = Path(args.out)
    metrics = optimize(config_from_flags("mobilenet_v3_small", {"int8": True, "out": str(out)}), echo=print)
    cfg = metrics["config"]
    q = qat_int8(out, metrics)
    f32, ptq = _row(metrics, "float32"), _row(metrics, "int8")
    lines = [
        f"MobileNetV3-Small (alpha {cfg['model']['alpha']}, {cfg['data']['image_size']}px) on digits "
        f"({metrics['dataset']}), family defaults: {cfg['train']['epochs']} epochs, {cfg['train']['optimizer']} "
        f"lr {cfg['train']['learning_rate']} ({cfg['train']['schedule']}), batch {cfg['train']['batch_size']}. "
        f"QAT: {q['epochs']} epochs at lr {q['learning_rate']:g} from the trained weights ({q['seconds']:.0f} s). "
        f"Accuracy is top-1 on the {q['test_images']} test images.",
        "",
        "| model | accuracy | target |",
        "|---|---|---|",
        f"| float Keras | {f32['keras_accuracy']:.4f} | >= 0.95 |",
        f"| float32 .tflite | {f32['tflite_accuracy']:.4f} | |",
        f"| int8 .tflite, post-training | {ptq['tflite_accuracy']:.4f} | |",
        f"| QAT Keras | {q['qat_keras']:.4f} | |",
        f"| int8 .tflite after QAT | {q['qat_int8_tflite']:.4f} | within 1 point of QAT Keras: "
        f"{q['delta_points']:+.2f} points |",
    ]
    if args.quick:
        lines += [
            "",
            f"Other efficient models, {args.quick_epochs} epochs only (family defaults otherwise), int8 by "
            "post-training quantization and after QAT (a fifth of the epochs, at a tenth of the learning rate):",
            "",
            "| model | float Keras | float32 .tflite | int8 .tflite (PTQ) | QAT Keras | int8 .tflite after QAT "
            "| QAT delta | train s |",
            "|---|---|---|---|---|---|---|---|",
        ]
    for name in args.quick:
        run = Path("runs") / f"{name}_e{args.quick_epochs}"
        m = optimize(
            config_from_flags(name, {"int8": True, "epochs": args.quick_epochs, "out": str(run), "no_bench": True}),
            echo=print,
        )
        f32, i8 = _row(m, "float32"), _row(m, "int8")
        seconds = m["stages"]["trained"]["train"].get("seconds", float("nan"))
        mq = qat_int8(run, m)
        lines.append(
            f"| {name} | {f32['keras_accuracy']:.4f} | {f32['tflite_accuracy']:.4f} | "
            f"{i8['tflite_accuracy']:.4f} | {mq['qat_keras']:.4f} | {mq['qat_int8_tflite']:.4f} | "
            f"{mq['delta_points']:+.2f} | {seconds:.0f} |"
        )
    lines += ["", f"Total time {time.time() - started:.0f} s (stages already trained in the run folders are reused)."]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        update_section("efficient-digits", "Efficient models on digits: MobileNetV3-Small float and QAT int8", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
