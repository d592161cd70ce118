"""Parameter and FLOP counts against hand computations (METHOD.md §1.7)."""

import numpy as np
import tensorflow as tf

from tfgrow import cost
from tfgrow.cost import LayerCost


def _small_network_costs():
    """8x8x3 -> conv3x3(4, group a) -> gated block (conv3x3 a -> b, conv3x3 b -> a, stride 1)
    -> global pool -> dense 5 with a bias: the layer costs of such a grown network."""
    return [
        LayerCost("stem", "conv", (3, 3), 64, None, "a", 3, 4),
        LayerCost("conv1", "conv", (3, 3), 64, "a", "b", 4, 6, block="block"),
        LayerCost("conv2", "conv", (3, 3), 64, "b", "a", 6, 4, block="block"),
        LayerCost("logits", "dense", (1, 1), 1, "a", None, 4, 5, True, False),
    ]


def test_counts_match_a_hand_computation():
    layer_costs = _small_network_costs()
    # conv1 maps group a -> b and conv2 maps b -> a; 8x8 pixels everywhere (stride 1).
    widths = {"a": 2, "b": 3}
    params, flops = cost.count(layer_costs, widths, {"block": 1})
    stem = (3 * 3 * 3 * 2 + 2 * 2, 2 * 9 * 3 * 2 * 64)
    conv1 = (9 * 2 * 3 + 2 * 3, 2 * 9 * 2 * 3 * 64)
    conv2 = (9 * 3 * 2 + 2 * 2, 2 * 9 * 3 * 2 * 64)
    dense = (2 * 5 + 5, 2 * 2 * 5)
    assert params == sum(p for p, _ in (stem, conv1, conv2, dense))
    assert flops == sum(f for _, f in (stem, conv1, conv2, dense))
    # Layer priority: an off block costs nothing.
    params_off, flops_off = cost.count(layer_costs, widths, {"block": 0})
    assert params_off == stem[0] + dense[0]
    assert flops_off == stem[1] + dense[1]


def test_tensor_and_python_counts_agree():
    layer_costs = _small_network_costs()
    widths = {"a": 3, "b": 5}
    exact = cost.count(layer_costs, widths, {"block": 1})
    tensors = cost.count(
        layer_costs,
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


def test_training_flops_are_three_forward_passes_per_example():
    assert cost.training_flops(10, 4) == 120
