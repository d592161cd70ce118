"""Rebuild with sliced weights: the pruned model computes what the original computes when the
pruned channels are switched off (gamma = beta = 0 in every BN that scales them)."""

import json

import keras
import numpy as np
import pytest

from tests.fixtures import graphs
from tfgrow import models
from tfgrow.graph import counting, slicing
from tfgrow.graph.analysis import analyze
from tfgrow.models.keras_resnet import keras_resnet_cifar
from tfgrow.models.mobilenet_v1 import mobilenet_v1
from tfgrow.morphnet.regularizers import GammaRegularizer, structure_keep

L = keras.layers


def switch_off_dead_channels(model, seed):
    """Random BN values; then zero gamma and beta of about half the channels of every group."""
    graphs.randomize_batch_norms(model, seed)
    graph = analyze(model)
    rng = np.random.default_rng(seed)
    dead = {
        g: rng.uniform(size=int(size)) < 0.5 if not graph.fixed[g] else np.zeros(size, bool)
        for g, size in enumerate(graph.group_sizes)
    }
    for name in graph.gamma_layers:
        layer = model.get_layer(name)
        mask = np.concatenate([dead[g] for g in graph.input_layouts[name]])
        layer.gamma.assign(np.where(mask, 0.0, layer.gamma.numpy()))
        layer.beta.assign(np.where(mask, 0.0, layer.beta.numpy()))
    return graph


def sepconv_concat_flatten():
    # Separable conv, a concat read by a BN, Flatten into a dense layer: the slicing paths
    # the ResNet and MobileNet checks do not take.
    inputs = keras.Input((6, 6, 3))
    a = graphs.conv_bn(inputs, 5, 3, "a")
    b = L.SeparableConv2D(4, 3, padding="same", name="sep")(a)
    b = L.BatchNormalization(name="sep_bn")(b)
    x = L.Concatenate(name="concat")([a, b])
    x = L.BatchNormalization(name="concat_bn")(x)
    x = L.MaxPooling2D(name="pool")(L.ReLU()(x))
    x = L.Dense(6, name="hidden")(L.Flatten(name="flatten")(x))
    x = L.ReLU()(L.BatchNormalization(name="hidden_bn")(x))
    return keras.Model(inputs, L.Dense(3, name="logits")(x))


@pytest.mark.parametrize(
    "build",
    [
        lambda: keras_resnet_cifar((16, 16, 3), 10, width_multiplier=0.5),
        lambda: mobilenet_v1((16, 16, 3), 10, width_multiplier=0.125),
        graphs.concat,
        sepconv_concat_flatten,
        # The zoo's other graph shapes: pre-activation, bottlenecks, no residual ties.
        lambda: models.wide_resnet((16, 16, 3), 10, depth=10, widen_factor=1),
        lambda: models.resnet50((16, 16, 3), 10, width_multiplier=0.0625),
        lambda: models.vgg16_bn((16, 16, 3), 10, width_multiplier=0.0625),
        lambda: models.autogrow_plain4net((16, 16, 3), 10, 0.0625, 2),
    ],
    ids=[
        "resnet20",
        "mobilenet_v1",
        "concat",
        "sepconv_concat_flatten",
        "wrn10_1",
        "resnet50",
        "vgg16_bn",
        "plain4net",
    ],
)
def test_rebuilt_model_outputs_equal_the_original_with_pruned_channels_switched_off(build):
    model = build()
    graph = switch_off_dead_channels(model, seed=3)
    regularizer = GammaRegularizer(model, graph, "flops", gamma_threshold=1e-2)
    keep = regularizer.keep_alive()
    rebuilt = slicing.rebuild_with_weights(model, graph, keep)
    assert counting.count_model(rebuilt)[1] < counting.count_model(model)[1]
    assert counting.count_model(rebuilt)[1] == float(regularizer.cost())
    images = np.random.default_rng(0).normal(size=(4,) + model.input_shape[1:]).astype("float32")
    np.testing.assert_allclose(
        rebuilt(images, training=False), model(images, training=False), rtol=1e-4, atol=1e-5
    )
    # Stock layers only: the rebuilt model survives a save/load round trip.
    assert all(type(layer).__module__.startswith("keras") for layer in rebuilt.layers)


def test_structure_json_rebuilds_the_model_with_those_widths(tmp_path):
    model = keras_resnet_cifar((16, 16, 3), 10, width_multiplier=0.5)
    graph = analyze(model)
    structure = graph.structure(np.where(graph.fixed, graph.group_sizes, 3))
    path = tmp_path / "structure.json"
    path.write_text(json.dumps(structure))
    keep = structure_keep(model, graph, json.loads(path.read_text()))
    rebuilt = slicing.rebuild_with_weights(model, graph, keep)
    assert analyze(rebuilt).structure(analyze(rebuilt).full_widths()) == structure
    rebuilt.save(tmp_path / "rebuilt.keras")
    loaded = keras.models.load_model(tmp_path / "rebuilt.keras")
    images = np.ones((1, 16, 16, 3), "float32")
    np.testing.assert_allclose(loaded(images), rebuilt(images), rtol=1e-5)
