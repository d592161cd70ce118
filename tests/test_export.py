"""Export: a grown network's plain stock-Keras model at H(s) serves as a SavedModel (Python,
saved_model_cli) and as TFLite, and is written atomically; only `tfgrow.grow`'s models are taken;
MorphNet runs export their final Keras model; every growing config exports from the launcher. What
the plain model computes and counts, family by family: tests/growing/test_plain.py."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfgrow
from tests.fixtures import graphs
from tests.fixtures.processes import run_module
from tests.fixtures.runs import STOCK_FLOPS, STOCK_PARAMS, fake_morphnet_run, stock_model
from tfgrow import export, run_export
from tfgrow.graph import count_model
from tfgrow.masks import Temperature
from tfgrow.models import keras_resnet_cifar

TOLERANCE = 1e-4
TEMPERATURE = Temperature(1.0, 200.0, "structure", 4.0)


def _mid_training_network(seed=0):
    """A grown ResNet in a mid-training state: random logits (some channels and blocks off),
    counters, BN parameters and statistics away from their initial values."""
    keras.utils.set_random_seed(seed)
    model = keras_resnet_cifar((12, 12, 1), 5, width_multiplier=0.5)
    graphs.randomize_batch_norms(model, seed)
    network = tfgrow.grow(model, grow_layers=True, channel_multiple=8)
    graphs.randomize_mask_groups(network, seed)
    return network


def _inference(network, images, epoch=2.0):
    return network.forward(images, network.deterministic_context(TEMPERATURE, epoch)).numpy()


def test_plain_model_refuses_what_tfgrow_grow_did_not_make():
    with pytest.raises(TypeError, match="Expected a growing network from tfgrow.grow"):
        export.plain_model(stock_model())
    with pytest.raises(TypeError, match="Received: Functional"):
        export.full_plain_model(stock_model())


def test_saved_model_serves_in_python_and_saved_model_cli_and_tflite_matches(tmp_path):
    network = _mid_training_network()
    images = np.random.default_rng(2).normal(size=(3, 12, 12, 1)).astype("float32")
    expected = _inference(network, images)
    plain = export.plain_model(network, TEMPERATURE, 2.0)

    saved = export.export_model(plain, tmp_path / "saved", info={"params": 1})
    loaded = tf.saved_model.load(saved)
    assert {"serve", "serving_default"} <= set(loaded.signatures)
    served = loaded.signatures["serve"](images=tf.constant(images))
    np.testing.assert_allclose(next(iter(served.values())).numpy(), expected, atol=TOLERANCE)
    with open(os.path.join(saved, "export_info.json")) as f:
        assert json.load(f) == {"params": 1, export.EXPORT_MARKER: export.EXPORT_FORMAT}

    np.save(tmp_path / "images.npy", images)
    result = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "saved_model_cli"),
            "run",
            f"--dir={saved}",
            "--tag_set=serve",
            "--signature_def=serve",
            f"--inputs=images={tmp_path / 'images.npy'}",
            f"--outdir={tmp_path / 'cli'}",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "cli" / "output_0.npy"), expected, atol=TOLERANCE)

    tflite = export.export_model(plain, tmp_path / "lite", format="tflite")
    assert tflite.endswith(".tflite")
    assert sorted(os.listdir(tmp_path / "lite")) == ["export_info.json", "model.tflite"]
    np.testing.assert_allclose(export.tflite_predict(tflite, images), expected, atol=TOLERANCE)


def test_a_failed_export_leaves_the_previous_export_and_no_temporary_files(tmp_path):
    network = _mid_training_network()
    plain = export.plain_model(network, TEMPERATURE, 2.0)
    target = tmp_path / "export"
    export.export_model(plain, target, info={"version": 1})

    class Killed(Exception):
        pass

    def half_written(path, **kwargs):
        os.makedirs(path)
        with open(os.path.join(path, "saved_model.pb"), "wb") as f:
            f.write(b"half")
        raise Killed()

    plain.export = half_written
    with pytest.raises(Killed):
        export.export_model(plain, target, info={"version": 2})
    assert sorted(os.listdir(tmp_path)) == ["export"]
    with open(target / "export_info.json") as f:
        assert json.load(f)["version"] == 1
    assert tf.saved_model.load(str(target)).signatures["serve"] is not None


def test_count_model_follows_tfgrow_cost_conventions():
    assert count_model(stock_model()) == (STOCK_PARAMS, STOCK_FLOPS)


def test_morphnet_run_exports_its_final_keras_model(tmp_path):
    model = fake_morphnet_run(str(tmp_path / "run"))
    images = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    info = run_export.export_run(str(tmp_path / "run"), str(tmp_path / "export"))
    assert (info["params"], info["flops"], info["method"]) == (
        STOCK_PARAMS,
        STOCK_FLOPS,
        "morphnet",
    )
    served = tf.saved_model.load(info["path"]).signatures["serve"](images=tf.constant(images))
    np.testing.assert_allclose(next(iter(served.values())), model(images), atol=TOLERANCE)


def test_export_launcher_writes_tflite_for_a_morphnet_run(tmp_path):
    model = fake_morphnet_run(str(tmp_path / "run"))
    result = run_module(
        "launchers.export",
        f"--model_dir={tmp_path / 'run'}",
        f"--export_dir={tmp_path / 'lite'}",
        "--format=tflite",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    images = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    outputs = export.tflite_predict(str(tmp_path / "lite" / "model.tflite"), images)
    np.testing.assert_allclose(outputs, model(images), atol=TOLERANCE)


def test_export_refuses_a_model_that_does_not_match_the_summary(tmp_path):
    fake_morphnet_run(str(tmp_path / "run"), params=STOCK_PARAMS + 1)
    with pytest.raises(export.ExportError, match=f"params={STOCK_PARAMS + 1}"):
        run_export.export_run(str(tmp_path / "run"), str(tmp_path / "export"))
    assert not os.path.exists(tmp_path / "export")


# Every growing family through the launchers: train tiny, export, serve, compare (tfgrow.grow:
# the source Keras model rebuilt through graph/slicing.py).
FAMILY_RUNS = {
    "resnet20": ("configs/experiments/fashion_mnist_resnet20_grow.gin", []),
    "vgg16": ("configs/experiments/fashion_mnist_vgg16_grow.gin", []),
    "basic3resnet": (
        "configs/experiments/cifar10_basic3resnet_grow.gin",
        ["MAX_BLOCKS_PER_STAGE=3"],
    ),
    "plain3net": ("configs/experiments/cifar10_plain3net_grow.gin", ["MAX_BLOCKS_PER_STAGE=3"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILY_RUNS))
def test_launcher_exports_a_trained_run_that_serves_like_the_trained_model(family, tmp_path):
    from tfgrow import data as data_lib
    from tfgrow.run_export import restore_network

    experiment, bindings = FAMILY_RUNS[family]
    model_dir, saved, lite = tmp_path / "run", tmp_path / "saved", tmp_path / "lite"
    trained = run_module(
        "launchers.train",
        f"--model_dir={model_dir}",
        f"--gin_file={experiment}",
        "--gin_file=configs/tiny.gin",
        *[f"--gin_bindings={b}" for b in bindings],
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    for directory, form in ((saved, "saved_model"), (lite, "tflite")):
        result = run_module(
            "launchers.export",
            f"--model_dir={model_dir}",
            f"--export_dir={directory}",
            f"--format={form}",
        )
        assert result.returncode == 0, result.stderr[-3000:]
    with open(model_dir / "summary.json") as f:
        summary = json.load(f)
    with open(saved / "export_info.json") as f:
        info = json.load(f)
    assert (info["params"], info["flops"]) == (summary["params"], summary["flops"])

    network, temperature, epoch, _ = restore_network(str(model_dir))
    images = np.random.default_rng(0).normal(size=(4, *network.input_spec_shape))
    images = images.astype("float32")
    expected = network.forward(images, network.deterministic_context(temperature, epoch)).numpy()
    serve = tf.saved_model.load(str(saved)).signatures["serve"]
    outputs = next(iter(serve(images=tf.constant(images)).values())).numpy()
    np.testing.assert_allclose(outputs, expected, atol=TOLERANCE)
    np.testing.assert_allclose(
        export.tflite_predict(str(lite / "model.tflite"), images), expected, atol=TOLERANCE
    )
    np.save(tmp_path / "images.npy", images)
    cli = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "saved_model_cli"),
            "run",
            f"--dir={saved}",
            "--tag_set=serve",
            "--signature_def=serve",
            f"--inputs=images={tmp_path / 'images.npy'}",
            f"--outdir={tmp_path / 'cli'}",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "cli" / "output_0.npy"), expected, atol=TOLERANCE)
    if summary["dataset"] == "fashion_mnist":
        # The exported model scores the run's own evaluation slice exactly as the run did.
        test_data = data_lib.load_dataset("fashion_mnist", "test", batch_size=32, max_examples=64)
        correct = sum(
            int(np.sum(np.argmax(next(iter(serve(images=x).values())), -1) == y.numpy()))
            for x, y in test_data
        )
        assert correct / 64 == pytest.approx(summary["eval_accuracy"], abs=1e-9)


def test_export_launcher_stops_with_a_message_for_an_unfinished_run(tmp_path):
    result = run_module(
        "launchers.export", f"--model_dir={tmp_path}", f"--export_dir={tmp_path / 'out'}"
    )
    assert result.returncode == 1
    assert "ExportError: Expected a finished run" in result.stderr
    assert "Traceback" not in result.stderr and not os.path.exists(tmp_path / "out")
