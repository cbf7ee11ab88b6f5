"""Shared fixtures (small datasets and image folders made on the fly, no downloads), and
the split of the ``slow`` tests into a representative set and the ``exhaustive`` rest.

``slow`` means "not in the default run" (``python -m pytest -m "not slow"``). CI's slow
step runs ``-m "slow and not exhaustive"``: the tests in :data:`REPRESENTATIVE`, chosen
so that every model family and every compression stage runs at least once within CI's
time limit. Every other slow test is marked ``exhaustive`` here; ``python -m pytest -m
slow`` still runs them all. An ID in :data:`REPRESENTATIVE` that the collection does not
have (a renamed test or model) stops the run, so no test drops out of CI silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

# CI's slow step (``-m "slow and not exhaustive"``): every family and every compression stage
# at least once (mlp and lenet5 run whole in the default suite, channel pruning too). In
# brackets, the CPU seconds each took on a shared 2-core machine (an upper bound of its
# time on 2 free cores); ~29 minutes in all. CI's limit is 90 for all of .ci/run.
REPRESENTATIVE = {
    # Structure and output hygiene, moved out of the default suite to keep it under 20 minutes.
    "tests/test_structure.py::test_adding_a_stage_is_one_module_and_one_line",  # ~25 s
    "tests/test_quiet.py::test_a_run_prints_no_tensorflow_log_lines_unless_verbose",  # ~45 s
    "tests/test_sweep.py::test_sweep_runs_then_skips_what_is_done",  # ~90 s
    "tests/test_zoo_efficient.py::test_qat_model_and_int8_tflite_agree[mobilenet_v3_small]",  # ~60-90 s
    "tests/test_distribute.py::test_two_workers_run_the_pruning_and_qat_stages_of_the_pipeline",  # ~55-120 s
    # Recipes, reduced (tests/test_recipe.py REDUCED_SETTINGS), each with an accuracy floor.
    "tests/test_recipe.py::test_every_recipe_runs_reduced[alexnet_025_int8]",  # 22 s
    "tests/test_recipe.py::test_every_recipe_runs_reduced[vgg11_025_int8]",  # 27 s
    "tests/test_recipe.py::test_every_recipe_runs_reduced[googlenet_050_int8]",  # 115 s
    "tests/test_recipe.py::test_every_recipe_runs_reduced[resnet18_prune50_qat]",  # 201 s, prune + QAT + int8
    "tests/test_recipe.py::test_every_recipe_runs_reduced[densenet121_050_int8]",  # 316 s, int8 + dynamic
    "tests/test_recipe.py::test_every_recipe_runs_reduced[efficientnet_b0_distill_int8]",  # 306 s, distill
    "tests/test_recipe.py::test_every_recipe_runs_reduced[mobilenet_v1_050_int8]",  # 57 s
    "tests/test_recipe.py::test_every_recipe_runs_reduced[mobilenet_v2_035_int8]",  # 105 s
    "tests/test_recipe.py::test_every_recipe_runs_reduced[mobilenet_v3_small_075_int8]",  # 115 s, + float16
    "tests/test_recipe.py::test_every_recipe_runs_reduced[shufflenet_v2_050_int8]",  # 112 s
    # ShuffleNet v1 (no recipe): built and wrapped, QAT -> int8 against Keras, MACs at g=8.
    "tests/test_models.py::test_model_builds_and_wraps[shufflenet_v1]",  # ~60 s (est.)
    "tests/test_zoo_efficient.py::test_qat_model_and_int8_tflite_agree[shufflenet_v1]",  # ~90 s (est.)
    "tests/test_zoo_efficient.py::test_shufflenet_v1_groups_macs[8]",  # ~15 s (est.)
    # Pruning and QAT under tf.distribute, two worker processes.
    "tests/test_distribute.py::test_two_workers_agree_through_pruning_and_qat_with_the_python_api",  # ~180 s (est.)
    # Two workers, 3 epochs, on a streamed image folder and on TFRecord shards: disjoint parts,
    # a new order and new augmentation each epoch, a rerun with the same seed gives the same
    # weights (issue 28; replaces issue 16's one-epoch folder test, now exhaustive).
    "tests/test_distribute.py::test_two_workers_read_a_new_order_and_new_draws_each_epoch",  # 87 s (load 4)
    # Keras Applications weights: MobileNetV3 (in-model rescaling) and ResNet-50 (v1, conv
    # biases, name map) give Keras' function; the fine-tuning schedule through the pipeline.
    "tests/test_weights.py::test_keras_file_computes_the_keras_function[mobilenet_v3_small]",
    "tests/test_weights.py::test_keras_file_computes_the_keras_function[resnet50]",
    # Real ImageNet weights on real photos (../shared/data): the head phase, then fine-tuning,
    # an accuracy floor well above chance; replaces test_optimize_fine_tunes_from_a_keras_file.
    "tests/test_transfer_photos.py::test_fine_tuning_real_weights_on_real_photos_is_well_above_chance",
    # Per-op profile (bench --profile) of a real int8 and float32 export, against the bench.
    "tests/test_profile.py::test_lenet5_profile_int8_and_float32_add_up_to_the_invoke",  # ~40 s (105 s contended)
    # Every stage (distill with --teacher-weights, channel pruning, pruning, QAT) from a run
    # folder's weights, the manifest's weight inputs, the report's "started from", another alpha.
    "tests/test_weights_v3.py::test_every_stage_starts_from_pretrained_weights",  # ~52 s CPU (170 s wall, load 8)
    # The device side in its own venv on tflite-runtime 2.14 (numpy<2, no TensorFlow): installs,
    # outputs bit-identical with and without metadata, predictions equal to LiteRT's.
    # ~30 s with the venv cached under .pytest_cache, ~60 s when pip builds it.
    "tests/test_tflite_runtime.py::test_device_side_installs_without_tensorflow",
    "tests/test_tflite_runtime.py::test_tflite_runtime_predicts_like_litert_with_and_without_metadata[int8]",
    "tests/test_tflite_runtime.py::test_tflite_runtime_predicts_like_litert_with_and_without_metadata[float32]",
}


def _check_representative(config, items) -> None:
    """Fail collection if a representative ID is gone from a file that was collected in full."""
    if any("::" in str(arg) for arg in config.args):  # node IDs on the command line: a subset
        return
    root = Path(config.rootpath)
    by_id = {item.nodeid: item for item in items}
    collected_files = {nodeid.split("::", 1)[0] for nodeid in by_id}
    problems = []
    for nodeid in sorted(REPRESENTATIVE):
        path = nodeid.split("::", 1)[0]
        if not (root / path).is_file():
            problems.append(f"{nodeid}: no file {path}")
        elif path in collected_files and nodeid not in by_id:
            problems.append(f"{nodeid}: no such test (renamed?)")
        elif nodeid in by_id and by_id[nodeid].get_closest_marker("slow") is None:
            problems.append(f"{nodeid}: not marked slow (it runs in the default suite; take it off the list)")
    if problems:
        raise pytest.UsageError(
            "tests/conftest.py REPRESENTATIVE names tests the collection does not have:\n  " + "\n  ".join(problems)
        )


@pytest.hookimpl(tryfirst=True)  # before -m/-k deselect, so the marker counts there
def pytest_collection_modifyitems(config, items):
    _check_representative(config, items)
    for item in items:
        if item.get_closest_marker("slow") is not None and item.nodeid not in REPRESENTATIVE:
            item.add_marker(pytest.mark.exhaustive)


@pytest.fixture(scope="session")
def digits32():
    """The built-in digits at 32x32x3 (the default for most models)."""
    from edgecnn.data.dataset import load_dataset

    return load_dataset("digits", image_size=32, channels=3)


@pytest.fixture()
def image_folder(tmp_path):
    """A tiny image folder: 3 classes x 8 PNGs of distinct colours."""
    from PIL import Image

    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for c, name in enumerate(["red", "green", "blue"]):
        (root / name).mkdir(parents=True)
        for i in range(8):
            img = np.zeros((20, 24, 3), np.uint8)
            img[..., c] = 200 + rng.integers(0, 50)
            Image.fromarray(img).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def lenet_run(tmp_path_factory):
    """LeNet-5 on digits, 1 epoch, float32 + int8, exported with metadata (the default): the
    main job in small, shared by the metadata and ``edgecnn-device predict`` tests."""
    from edgecnn.pipeline import optimize
    from edgecnn.settings.run_config import RunConfig

    out = tmp_path_factory.mktemp("run") / "lenet5"
    cfg = RunConfig.from_dict(
        {
            "model": {"name": "lenet5"},
            "train": {"epochs": 1, "verbose": 0},
            "convert": {"int8": True, "calibration_samples": 20},
            "bench": {"enabled": False},
            "out": str(out),
        }
    )
    metrics = optimize(cfg, echo=lambda *a: None)
    return out, metrics


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """The tiny float32/int8/dynamic ``.tflite`` files of ``tests/_tiny_tflite.py``, built once."""
    from _tiny_tflite import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def digit_pngs(lenet_run, tmp_path_factory):
    """``lenet_run``'s test split as PNGs, one folder per class (the images eval and predict both
    read), and how many."""
    from edgecnn.data.dataset import write_split_images

    out, _ = lenet_run
    root = tmp_path_factory.mktemp("pngs") / "test"
    return root, write_split_images(out, root)
