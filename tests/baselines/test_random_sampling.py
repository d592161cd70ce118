"""The random baseline: structures drawn with one fixed p, frozen logits, a seeded final draw."""

import json

import numpy as np
import pytest
import tensorflow as tf

import tfgrow
from tests.fixtures.processes import contract_problems, launch
from tfgrow import cost as cost_lib
from tfgrow.baselines import random_sampling
from tfgrow.masks import Temperature, step_seed
from tfgrow.models import autogrow_basic3resnet, keras_resnet_cifar
from tfgrow.run_export import restore_network


def _resnet20(input_shape):
    """ResNet-20 (stage widths 16, 32, 64: 336 channels in 12 groups) with 10 classes, channels
    grown (no block gates), as the random configs grow it."""
    return tfgrow.grow(keras_resnet_cifar(input_shape, 10), grow_layers=False)


def test_every_structure_is_drawn_with_frequency_p_and_mask_value_one():
    network = tfgrow.grow(autogrow_basic3resnet((8, 8, 1), 10, max_blocks_per_stage=3))
    random_sampling.prepare(network, 0.3, seed=0)
    temperature = Temperature(num_epochs=1.0)

    @tf.function
    def draw(step):
        context = network.sample_context(step_seed(0, step), temperature, 0.0)
        channels = list(context.channels.values())
        # Sampled channels carry value 1 (padding slots 0): no sigma(beta s) scaling.
        values = tf.concat(
            [tf.boolean_mask(a.values, tf.gather(a.mask, a.indices) > 0) for a in channels], 0
        )
        return (
            tf.add_n([tf.reduce_sum(a.mask) for a in channels]),
            tf.add_n([tf.cast(g.on, tf.float32) for g in context.gates.values()]),
            tf.reduce_all(tf.equal(values, 1.0)),
        )

    num_steps = 100
    num_channels = sum(g.size for g in network.channel_groups.values())  # 448
    num_gates = len(network.gate_groups)  # 6
    drawn, gates_on = 0.0, 0.0
    for step in range(num_steps):
        channels, gates, values_are_one = draw(tf.constant(step, tf.int64))
        assert bool(values_are_one)
        drawn += float(channels)
        gates_on += float(gates)
    # Within 4 binomial standard deviations (0.009 for channels, 0.075 for gates). A group with
    # nothing drawn keeps one channel: 0.7^16 = 0.3% of stage-1 stream draws, +0.0001.
    for count, total in ((drawn, num_steps * num_channels), (gates_on, num_steps * num_gates)):
        assert abs(count / total - 0.3) < 4 * np.sqrt(0.21 / total)


def test_the_final_architecture_keeps_each_structure_with_probability_p_seeded():
    network = _resnet20((8, 8, 1))
    kept = random_sampling.prepare(network, 0.3, seed=7)
    widths, _ = network.architecture()
    assert widths == {name: int(keep.sum()) for name, keep in kept.items()}
    fraction = sum(widths.values()) / sum(g.size for g in network.channel_groups.values())
    assert abs(fraction - 0.3) < 4 * np.sqrt(0.21 / 336)  # 336 channels
    again = _resnet20((8, 8, 1))
    random_sampling.prepare(again, 0.3, seed=7)
    assert again.architecture()[0] == widths
    other = _resnet20((8, 8, 1))
    random_sampling.prepare(other, 0.3, seed=8)
    assert other.architecture()[0] != widths


def test_a_probability_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="Received: 1.5"):
        random_sampling.prepare(_resnet20((8, 8, 1)), 1.5, seed=0)


def test_p_equals_the_target_unless_matched_to_its_cost():
    network = _resnet20((28, 28, 1))
    assert random_sampling.random_probability(network, 0.3, "params") == 0.3
    p = random_sampling.random_probability(network, 0.3, "params", match="cost")
    # Conv params scale with p^2 (both sides drawn), so p lands near sqrt(0.3) = 0.548.
    assert 0.5 < p < 0.6
    # The final draws cost the target on average: 10 seeds, per-draw std 0.026 (20 draws).
    fractions = []
    for seed in range(10):
        random_sampling.prepare(network, p, seed)
        widths, blocks = network.architecture()
        fractions.append(cost_lib.fraction(network.layer_costs, widths, blocks, "params"))
    assert abs(np.mean(fractions) - 0.3) < 4 * 0.026 / np.sqrt(10)
    # At p = the target the same draws keep about 0.3^2 of the params.
    random_sampling.prepare(network, 0.3, seed=0)
    widths, blocks = network.architecture()
    assert cost_lib.fraction(network.layer_costs, widths, blocks, "params") < 0.15
    with pytest.raises(ValueError, match="Received: 'params'"):
        random_sampling.random_probability(network, 0.3, "params", match="params")


@pytest.mark.slow
@pytest.mark.parametrize("config", ["random", "random_matched"])
def test_a_tiny_random_run_ends_at_its_seeded_draw_with_frozen_logits(config, tmp_path):
    result = launch(
        tmp_path,
        f"configs/experiments/fashion_mnist_resnet20_{config}.gin",
        "configs/tiny.gin",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert contract_problems(summary) == []
    assert summary["method"] == "random" and summary["budget_target"] == 0.3
    network, *_ = restore_network(str(tmp_path))  # the network the run's config builds
    p = random_sampling.random_probability(
        network, 0.3, "params", match="cost" if config == "random_matched" else "structures"
    )
    assert summary["random_probability"] == pytest.approx(p)
    # The architecture is the draw of seed 0: ten training steps did not move a logit.
    kept = random_sampling.prepare(network, p, seed=0)
    assert summary["architecture"] == {name: int(keep.sum()) for name, keep in kept.items()}
    # Sub-networks of about p of the channels per group: conv FLOPs fall to about p^2.
    assert summary["train_cost_savings"] > 0.8 / p**2


def test_static_capacities_are_planned_from_p_not_from_the_logits():
    network = _resnet20((8, 8, 1))
    random_sampling.prepare(network, 0.3, seed=0)
    bounds = network.sampling_bounds(Temperature(num_epochs=1.0), 0.0)
    # Mean plus 4 standard deviations of Binomial(n, 0.3), floored: 16 -> 4.8 + 7.33, 64 ->
    # 19.2 + 14.66. From the logits (sigma(+-3) = 0.95 / 0.05) they would follow the final draw.
    assert bounds["stem_conv"] == 12 and bounds["stage3_block1_2_conv"] == 33  # 16 and 64 wide
