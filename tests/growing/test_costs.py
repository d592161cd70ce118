"""Params and FLOPs of a grown model are counted by `tfgrow.cost` from the graph's cost terms,
and agree with counting the Keras model itself (`tfgrow.graph.counting`) at any widths."""

import keras
import numpy as np
import pytest

import tfgrow
from tests.fixtures import graphs
from tfgrow import cost
from tfgrow.graph import build_at_widths, count_model
from tfgrow.models import keras_resnet_cifar, mobilenet_v1

BUILDERS = {
    "resnet20": lambda: keras_resnet_cifar((12, 12, 3), 5, width_multiplier=0.5),
    "mobilenet_v1": lambda: mobilenet_v1((16, 16, 3), 5, width_multiplier=0.125),
    "se_concat_flatten": graphs.se_concat_flatten,
    "separable": lambda: _separable(),
}


def _separable():
    inputs = keras.Input((8, 8, 3), name="images")
    x = keras.layers.SeparableConv2D(8, 3, padding="same", name="sep")(inputs)
    x = keras.layers.BatchNormalization(name="sep_bn")(x)
    x = keras.layers.DepthwiseConv2D(3, use_bias=True, name="dw")(x)
    x = keras.layers.BatchNormalization(center=False, name="dw_bn")(x)
    return keras.Model(inputs, graphs.head(x, 4), name="separable")


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_full_cost_equals_the_keras_model_count(name):
    model = BUILDERS[name]()
    grown = tfgrow.grow(model)
    assert grown.full_cost() == count_model(model)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_cost_at_random_widths_equals_the_rebuilt_model_count(name):
    model = BUILDERS[name]()
    grown = tfgrow.grow(model)
    graph = grown.graph
    rng = np.random.default_rng(0)
    widths = graph.full_widths()
    for g in np.flatnonzero(graph.prunable):
        widths[g] = rng.integers(1, graph.group_sizes[g] + 1)
    by_name = {graph.group_names[g]: int(widths[g]) for g in np.flatnonzero(graph.prunable)}
    assert cost.count(grown.layer_costs, by_name) == count_model(
        build_at_widths(model, graph, widths)
    )


def test_off_blocks_do_not_count():
    model = keras_resnet_cifar((12, 12, 3), 5, width_multiplier=0.5)
    grown = tfgrow.grow(model)
    widths, _ = grown.architecture()
    full = {name: group.size for name, group in grown.channel_groups.items()}
    on = cost.count(grown.layer_costs, full, {})
    off = cost.count(grown.layer_costs, full, {"stage3_block3_add": 0})
    block = ["stage3_block3_1_conv", "stage3_block3_1_bn", "stage3_block3_2_conv"]
    block += ["stage3_block3_2_bn"]
    params = sum(int(np.prod(v.shape)) for n in block for v in model.get_layer(n).trainable_weights)
    assert on[0] - off[0] == params
    assert widths and all(width == 1 for width in widths.values())  # the seed: one channel each
