"""The mask penalty is the expected number of structures of the sampled network, with layer
priority: a channel inside a gated block counts with its block's probability (METHOD.md §1.1)."""

import numpy as np
import pytest
import tensorflow as tf

from tests.fixtures.runs import tiny_basic3resnet
from tfgrow.masks import Temperature

TEMPERATURE = Temperature(1.0, 16.0, "structure", 4.0)  # gamma = 2
# Stage 1 of Basic3ResNet: its stream (4 channels), block2's inner conv (4) and block2's gate.
STREAM, INNER, GATE = "stem_conv", "stage1_block2_1_conv", "stage1_block2_add_gate"


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


@pytest.fixture
def network():
    network = tiny_basic3resnet()  # stage widths 4, 8, 16; block2 of every stage gated
    groups = network.group_variables()
    rng = np.random.default_rng(0)
    for group in groups.values():
        group.logits.assign(rng.uniform(-3, 3, group.size).astype(np.float32))
    groups[GATE].logits.assign([-3.0])  # off, as a fresh seed's gates
    groups[GATE].counters.assign([1.0])  # beta = 2
    groups[INNER].counters.assign([0.0, 1.0, 2.0, 0.0])  # betas 1, 2, 4, 1
    return network


def test_penalty_counts_channels_of_gated_blocks_with_the_block_probability(network):
    groups = network.group_variables()
    probabilities = {
        name: sigmoid(2.0 ** group.counters.numpy() * group.logits.numpy())
        for name, group in groups.items()
    }
    expected_channels = 0.0
    for name in network.channel_groups:
        # The inner conv of block2 lies in its gated branch; the streams do not.
        gate = name.replace("_1_conv", "_add_gate") if "_block2_" in name else None
        weight = probabilities[gate][0] if gate else 1.0
        expected_channels += weight * probabilities[name].sum()
    expected_layers = sum(probabilities[f"stage{i}_block2_add_gate"][0] for i in (1, 2, 3))
    channels, layers = network.mask_penalty(TEMPERATURE, epoch=0.0)
    assert float(channels) == pytest.approx(expected_channels, rel=1e-5)
    assert float(layers) == pytest.approx(expected_layers, rel=1e-5)


def test_budget_term_barely_moves_the_channels_of_a_block_that_is_off(network):
    # Under budget (lambda_c < 0) an unsampled channel moves only by the budget term. Inside a
    # block that is off it must move sigma(beta_l s_l) = sigma(-6) = 0.25% as fast as the same
    # channel outside any gated block; before, the two moved alike, and Basic3ResNet's off blocks
    # grew to full width and turned on at full width (budget overshoot 35% -> 40.5%).
    groups = network.group_variables()
    inner, stream, gate = groups[INNER], groups[STREAM], groups[GATE]
    stream.logits.assign(inner.logits)
    stream.counters.assign(inner.counters)
    with tf.GradientTape() as tape:
        channels, _ = network.mask_penalty(TEMPERATURE, epoch=0.0)
    inner_grad, stream_grad, gate_grad = tape.gradient(
        channels, [inner.logits, stream.logits, gate.logits]
    )
    gate_probability = sigmoid(2.0 * -3.0)
    np.testing.assert_allclose(inner_grad, gate_probability * stream_grad, rtol=1e-5)
    # The gate moves by its block's expected width: d/ds_l = beta_l sigma'(beta_l s_l) sum sigma.
    beta_s = 2.0 ** inner.counters.numpy() * inner.logits.numpy()
    expected = 2.0 * gate_probability * (1 - gate_probability) * sigmoid(beta_s).sum()
    assert float(gate_grad[0]) == pytest.approx(expected, rel=1e-5)
