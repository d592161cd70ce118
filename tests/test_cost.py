"""Parameter and FLOP counts against hand computations (METHOD.md §1.7)."""

import numpy as np
import pytest
import tensorflow as tf

from tfgrow import cost
from tfgrow.layers.blocks import GrowableBlock
from tfgrow.layers.conv import GrowableConv2D, GrowableDense
from tfgrow.layers.pooling import Pool2D
from tfgrow.masks import MaskGroup
from tfgrow.models import GrowingNetwork, resnet_cifar, vgg16


def _small_network():
    """8x8x3 -> conv3x3(4, group a) -> block(stride 1, gated, inner b, out a) -> pool -> dense 5."""
    groups = [MaskGroup(4, name="a"), MaskGroup(6, name="b")]
    layers = [
        GrowableConv2D(4, 3, output_group="a", name="stem"),
        GrowableBlock(6, "a", "b", "a", gated=True, name="block"),
        Pool2D("global_average", name="pool"),
        GrowableDense(
            5,
            input_group="a",
            use_batch_norm=False,
            use_bias=True,
            activation="linear",
            name="logits",
        ),
    ]
    return GrowingNetwork(layers, groups, (8, 8, 3))


def test_counts_match_a_hand_computation():
    network = _small_network()
    # conv1 maps group a -> b and conv2 maps b -> a; 8x8 pixels everywhere (stride 1).
    widths = {"a": 2, "b": 3}
    params, flops = cost.count(network.layer_costs, widths, {"block": 1})
    stem = (3 * 3 * 3 * 2 + 2 * 2, 2 * 9 * 3 * 2 * 64)
    conv1 = (9 * 2 * 3 + 2 * 3, 2 * 9 * 2 * 3 * 64)
    conv2 = (9 * 3 * 2 + 2 * 2, 2 * 9 * 3 * 2 * 64)
    dense = (2 * 5 + 5, 2 * 2 * 5)
    assert params == sum(p for p, _ in (stem, conv1, conv2, dense))
    assert flops == sum(f for _, f in (stem, conv1, conv2, dense))
    # Layer priority: an off block costs nothing.
    params_off, flops_off = cost.count(network.layer_costs, widths, {"block": 0})
    assert params_off == stem[0] + dense[0]
    assert flops_off == stem[1] + dense[1]


def test_tensor_and_python_counts_agree():
    network = _small_network()
    widths = {"a": 3, "b": 5}
    exact = cost.count(network.layer_costs, widths, {"block": 1})
    tensors = cost.count(
        network.layer_costs,
        {k: tf.constant(v) for k, v in widths.items()},
        {"block": tf.constant(1.0)},
    )
    assert [float(t) for t in tensors] == [float(e) for e in exact]


def test_the_tensor_form_counts_exactly_what_the_python_counter_counts():
    # A grown MobileNetV1-style graph has depthwise, pointwise, dense, batch-norm entries and a
    # Flatten-free head; a grown ResNet has residual ties and gated blocks.
    import tfgrow
    from tfgrow import models

    rng = np.random.default_rng(0)
    for builder in (models.keras_resnet_cifar, models.mobilenet_v1):
        layer_costs = tfgrow.grow(builder((16, 16, 3), 10)).layer_costs
        full = cost.full_widths(layer_costs)
        blocks = sorted({layer.block for layer in layer_costs if layer.block is not None})
        for _ in range(4):
            widths = {name: int(rng.integers(1, size + 1)) for name, size in full.items()}
            states = {name: int(rng.integers(0, 2)) for name in blocks}
            expected = cost.count(layer_costs, widths, states)
            received = cost.count(
                layer_costs,
                {name: tf.constant(width) for name, width in widths.items()},
                {name: tf.constant(float(state)) for name, state in states.items()},
            )
            assert [float(r) for r in received] == [float(e) for e in expected]
    # Missing groups count at full width, missing blocks as on, as in the Python counter.
    received = cost.count(layer_costs, {next(iter(full)): tf.constant(1)}, {})
    assert [float(r) for r in received] == [
        float(e) for e in cost.count(layer_costs, {**full, next(iter(full)): 1}, {})
    ]


def test_full_resnet20_matches_the_keras_parameter_count():
    network = resnet_cifar((32, 32, 3), 10, growing=False)
    params, flops = network.full_cost()
    trainable = sum(int(tf.size(v)) for v in network.weight_variables())
    # stem 464 + stage1 14,016 + stage2 51,648 + stage3 205,696 + dense 650 (projection
    # shortcuts, BN gamma/beta counted, mask logits not).
    assert params == trainable == 272_474
    assert 80e6 < flops < 90e6  # ~41M multiply-adds on 32x32


def test_full_vgg16_has_the_papers_parameter_count():
    params, _ = vgg16((32, 32, 3), 10, growing=False).full_cost()
    assert params == pytest.approx(14.99e6, rel=0.002)


def test_training_flops_are_three_forward_passes_per_example():
    assert cost.training_flops(10, 4) == 120
