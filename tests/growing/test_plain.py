"""Export of a grown model (`tfgrow.grow`): its source model rebuilt at H(s) through the one
weight slicer computes the grown model's inference, holds the kept shapes, counts like the run's
summary, serves as a SavedModel and as TFLite, and exports from the launcher."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfgrow
from tests.fixtures import graphs
from tests.fixtures.processes import check_tiny_run_outputs, run_module
from tfgrow import cost, export
from tfgrow.graph import count_model
from tfgrow.masks import Temperature
from tfgrow.models import keras_resnet_cifar, mobilenet_v1

TOLERANCE = 1e-4
TEMPERATURE = Temperature(1.0, 200.0, "structure", 4.0)
EPOCH = 2.0


def _plain_blocks_net():
    inputs = keras.Input((8, 8, 2), name="images")
    x = graphs.conv_bn(inputs, 6, 3, "stem")
    for index in (1, 2, 3, 4):
        y = graphs.conv_bn(x, 6, 3, f"plain{index}_a")
        x = graphs.conv_bn(y, 6, 3, f"plain{index}_b")
    return keras.Model(inputs, graphs.head(x, 3), name="plain_blocks")


PLAIN_BLOCKS = [
    (f"plain{index - 1}_b_relu" if index > 1 else "stem_relu", f"plain{index}_b_relu")
    for index in (1, 2, 3, 4)
]
# name -> (builder, grow arguments, seed of the logits: chosen so gated blocks are both on and off)
GRAPHS = {
    "resnet20": (
        lambda: keras_resnet_cifar((12, 12, 3), 5, width_multiplier=0.5),
        {"grow_layers": True},
    ),
    # Zero-valued padding slots (channel_multiple 8) are computed by the grown model, not exported.
    "resnet20_padded": (
        lambda: keras_resnet_cifar((12, 12, 3), 5, width_multiplier=0.5),
        {"grow_layers": True, "channel_multiple": 8},
    ),
    "mobilenet_v1": (
        lambda: mobilenet_v1((16, 16, 3), 5, width_multiplier=0.125, dropout_rate=0.0),
        {},
    ),
    "plain_blocks": (_plain_blocks_net, {"plain_blocks": PLAIN_BLOCKS}),
    # A sigmoid-gated squeeze-and-excitation producer: its mask values cannot be folded into its
    # kernel, so a Rescaling layer carries them.
    "se_concat_flatten": (graphs.se_concat_flatten, {}),
    # Producers without batch norm: a ReLU conv and dense (values folded into kernel and bias)
    # and a tanh conv (values carried by a Rescaling layer).
    "no_batch_norm": (graphs.no_batch_norm, {}),
    "keras_mobilenet_v2": (
        lambda: keras.applications.MobileNetV2(
            weights=None, input_shape=(32, 32, 3), classes=5, alpha=0.35
        ),
        {"grow_layers": True},
    ),
}


def _mid_training(name, seed=0):
    """The grown model in a mid-training state: random logits (some channels and blocks off),
    counters, BN parameters and statistics away from their initial values."""
    builder, arguments = GRAPHS[name]
    keras.utils.set_random_seed(seed)
    model = builder()
    graphs.randomize_batch_norms(model, seed)
    grown = tfgrow.grow(model, **arguments)
    graphs.randomize_mask_groups(grown, seed)
    return model, grown


def _inference(grown, images):
    return grown.forward(images, grown.deterministic_context(TEMPERATURE, EPOCH)).numpy()


def _images(model, seed=1, count=4):
    shape = (count, *model.input_shape[1:])
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _kept_width(grown, widths, layout):
    graph = grown.graph
    return sum(widths.get(graph.group_names[g], int(graph.group_sizes[g])) for g in layout)


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_export_computes_the_grown_models_inference_at_the_kept_shapes(name):
    model, grown = _mid_training(name)
    widths, blocks = grown.architecture()
    sizes = {group: mask.size for group, mask in grown.channel_groups.items()}
    assert any(widths[group] < sizes[group] for group in sizes), "nothing was pruned"
    if blocks:  # both paths of a gated block: bypassed (off) and its value folded in (on)
        assert 0 < sum(blocks.values()) < len(blocks), blocks
    plain = export.plain_model(grown, TEMPERATURE, EPOCH)
    images = _images(model)
    np.testing.assert_allclose(plain(images).numpy(), _inference(grown, images), atol=TOLERANCE)

    assert all(type(layer).__module__.startswith("keras.") for layer in plain.layers)
    present = {layer.name: layer for layer in plain.layers}
    off_layers = {
        layer
        for block in grown.blocks
        if blocks.get(block.name) == 0
        for layer in (*block.branch_layers, block.output_layer)
    }
    assert not off_layers & set(present), "an off block's layers are still in the graph"
    for layer_name in grown.graph.width_layers:
        if layer_name in off_layers:
            continue
        layer = present[layer_name]
        kernel = layer.pointwise_kernel if hasattr(layer, "pointwise_kernel") else layer.kernel
        in_width = _kept_width(grown, widths, grown.graph.input_layouts[layer_name])
        out_width = _kept_width(grown, widths, grown.graph.output_layouts[layer_name])
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            assert tuple(kernel.shape[2:]) == (out_width, 1), layer_name
        else:
            assert tuple(kernel.shape[-2:]) == (in_width, out_width), layer_name
    expected = tuple(int(v) for v in cost.count(grown.layer_costs, widths, blocks))
    assert count_model(plain) == expected


def test_full_network_exports_the_source_model():
    keras.utils.set_random_seed(0)
    model = keras_resnet_cifar((8, 8, 1), 3, width_multiplier=0.25)
    graphs.randomize_batch_norms(model)
    grown = tfgrow.grow(model, growing=False)
    plain = export.plain_model(grown)
    images = _images(model)
    np.testing.assert_allclose(plain(images), model(images, training=False), atol=1e-5)
    assert count_model(plain) == count_model(model) == tuple(grown.full_cost())
    assert [w.shape for w in plain.weights] == [w.shape for w in model.weights]


def test_exported_grown_model_serves_as_saved_model_and_tflite(tmp_path):
    model, grown = _mid_training("resnet20")
    images = _images(model, count=3)
    expected = _inference(grown, images)
    plain = export.plain_model(grown, TEMPERATURE, EPOCH)

    saved = export.export_model(plain, tmp_path / "saved")
    serve = tf.saved_model.load(saved).signatures["serve"]
    served = serve(images=tf.constant(images))  # the input keeps the source's name
    np.testing.assert_allclose(next(iter(served.values())).numpy(), expected, atol=TOLERANCE)
    tflite = export.export_model(plain, tmp_path / "lite", format="tflite")
    np.testing.assert_allclose(export.tflite_predict(tflite, images), expected, atol=TOLERANCE)


def test_export_refuses_a_model_that_does_not_compute_the_grown_models_inference():
    model, grown = _mid_training("resnet20")
    plain = export.plain_model(grown, TEMPERATURE, EPOCH)
    difference = export.check_outputs(grown, TEMPERATURE, EPOCH, plain)
    assert difference <= 1e-5
    # One kept channel's BN shift off by 0.5: what a wrong fold or slice would do.
    norm = plain.get_layer("stage2_block1_2_bn")
    gamma, beta, *statistics = norm.get_weights()
    norm.set_weights([gamma, beta + 0.5 * (np.arange(len(beta)) == 0), *statistics])
    with pytest.raises(export.ExportError, match="differ from the growing network's inference"):
        export.check_outputs(grown, TEMPERATURE, EPOCH, plain)


@pytest.mark.slow
def test_launcher_grows_and_exports_keras_resnet50(tmp_path):
    # configs/experiments/fashion_mnist_keras_resnet50_grow.gin under tiny.gin: 10 steps of a
    # keras.applications.ResNet50 on Fashion-MNIST (28x28x1, zero-padded to 32x32 in the model).
    from tfgrow.run_export import restore_network

    model_dir, saved = tmp_path / "run", tmp_path / "saved"
    trained = run_module(
        "launchers.train",
        f"--model_dir={model_dir}",
        "--gin_file=configs/experiments/fashion_mnist_keras_resnet50_grow.gin",
        "--gin_file=configs/tiny.gin",
    )
    # This is the config's tiny run in CI (tests/launchers/test_train.py leaves it to this test).
    check_tiny_run_outputs(trained, model_dir)
    exported = run_module("launchers.export", f"--model_dir={model_dir}", f"--export_dir={saved}")
    assert exported.returncode == 0, exported.stderr[-3000:]
    with open(model_dir / "summary.json") as f:
        summary = json.load(f)
    with open(saved / "export_info.json") as f:
        info = json.load(f)
    assert summary["architecture"]["conv5_block3_2_conv"] >= 1
    assert (info["params"], info["flops"]) == (summary["params"], summary["flops"])
    assert info["max_output_difference"] <= TOLERANCE

    network, temperature, epoch, _ = restore_network(str(model_dir))
    images = np.random.default_rng(0).normal(size=(4, 28, 28, 1)).astype(np.float32)
    expected = network.forward(images, network.deterministic_context(temperature, epoch))
    serve = tf.saved_model.load(str(saved)).signatures["serve"]
    outputs = next(iter(serve(images=tf.constant(images)).values())).numpy()
    np.testing.assert_allclose(outputs, expected.numpy(), atol=TOLERANCE)
