"""XLA mode: static per-group capacities give the ragged mode's results when nothing overflows.

DESIGN.md, "Compact execution": under XLA each channel group runs at a capacity from a ladder,
padded slots carry mask 0, and a draw above capacity keeps the most probable structures.
"""

import numpy as np
import pytest
import tensorflow as tf

from tests.fixtures.runs import tiny_basic3resnet, tiny_resnet
from tfgrow.budget import Budget
from tfgrow.masks import (
    Temperature,
    capacity_ladder,
    capacity_set,
    choose_capacity,
    count_bound,
    step_seed,
)
from tfgrow.train.capacity import CapacityPlanner
from tfgrow.train.trainer import Trainer

BUILDERS = {
    # Stage widths 4, 8, 16; channels only, as the main job grows ResNet-20.
    "resnet20": lambda: tiny_resnet(depth=20, grow_layers=False),
    "basic3resnet": tiny_basic3resnet,
}
STAGE3 = "stage3_block1_2_conv"  # the stage-3 stream's group (16 channels), read by the logits


def test_capacity_ladder_rounds_fractions_up_to_the_multiple():
    assert capacity_ladder(64, 8) == [8, 16, 24, 32, 40, 48, 56, 64]
    assert capacity_ladder(16, 8) == [8, 16]
    assert capacity_ladder(6, 8) == [6]
    assert capacity_ladder(512, 128) == [128, 256, 384, 512]
    assert choose_capacity([8, 16, 24], 8.0) == 8
    assert choose_capacity([8, 16, 24], 8.5) == 16
    assert choose_capacity([8, 16, 24], 30) == 24


def test_count_bound_is_mean_plus_sigmas_std_floored_to_a_count():
    p = np.array([0.5, 0.5, 0.5, 0.5, 1.0, 0.0])
    assert count_bound(p, sigmas=0.0) == 3.0
    assert count_bound(p, sigmas=2.0) == 3.0 + 2.0 * 1.0
    assert count_bound(p, sigmas=1.5) == 4.0  # 4.5 structures cannot be drawn
    # Saturated logits: 8 certain structures need 8 slots, not the next rung.
    saturated = tf.sigmoid(tf.constant([30.0] * 8 + [-30.0] * 8)).numpy()
    assert count_bound(saturated, sigmas=4.0) == 8.0
    assert choose_capacity(capacity_ladder(16, 8), count_bound(saturated)) == 8


def test_capacity_set_keeps_the_most_probable_sampled_structures():
    keep = tf.constant([True, False, True, True, True, False])
    values = tf.constant([0.6, 0.9, 0.2, 0.8, 0.4, 0.1])
    # Four drawn, three slots: the least probable drawn structure (index 2) is dropped.
    active, dropped = capacity_set(keep, values, values, 3)
    assert int(dropped) == 1
    np.testing.assert_array_equal(active.indices.numpy(), [0, 3, 4])
    np.testing.assert_array_equal(active.mask.numpy(), [1, 0, 0, 1, 1, 0])
    np.testing.assert_allclose(active.values.numpy(), [0.6, 0.8, 0.4])
    # Room to spare: every drawn structure stays, padding slots carry mask value 0.
    active, dropped = capacity_set(keep, values, values, 5)
    assert int(dropped) == 0
    assert active.indices.shape == (5,)
    np.testing.assert_array_equal(active.mask.numpy(), keep.numpy().astype(np.float32))
    padded = ~keep.numpy()[active.indices.numpy()]
    assert padded.sum() == 1 and np.all(active.values.numpy()[padded] == 0.0)


def _pair(name, jit_compile):
    tf.keras.utils.set_random_seed(0)
    network = BUILDERS[name]()
    network.channel_multiple = 4
    rng = np.random.default_rng(1)
    for group in network.group_variables().values():
        group.logits.assign(rng.normal(-1.0, 1.0, group.logits.shape).astype(np.float32))
    trainer = Trainer(
        network,
        tf.distribute.get_strategy(),
        global_batch_size=8,
        steps_per_epoch=4,
        learning_rate=lambda step: 0.05,
        mask_learning_rate=lambda step: 0.5,
        temperature=Temperature(num_epochs=2),
        seed=5,
        budget=Budget(target=0.4, lambda_channel_base=1.0),
        jit_compile=jit_compile,
    )
    return network, trainer


def _data():
    rng = np.random.default_rng(2)
    images = tf.constant(rng.normal(size=(3, 8, 8, 8, 1)).astype(np.float32))
    labels = tf.constant(rng.integers(0, 3, (3, 8)).astype(np.int32))
    return [(images[i], labels[i]) for i in range(3)]


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_xla_with_capacities_matches_ragged_mode_without_overflow(name):
    ragged_net, ragged = _pair(name, jit_compile=False)
    xla_net, xla = _pair(name, jit_compile=True)
    planner = CapacityPlanner(xla_net, xla.temperature, sigmas=3.0)
    capacities = planner.plan(0)
    sizes = {n: g.size for n, g in xla_net.channel_groups.items()}
    assert any(capacities[n] < sizes[n] for n in sizes), "capacities must actually compact"
    for batch in _data():
        a = ragged.train_step(batch)
        b = xla.train_step(batch, capacities)
        assert float(b["dropped"]) == 0.0
        np.testing.assert_allclose(float(a["loss_sum"]), float(b["loss_sum"]), rtol=1e-4)
    assert ragged_net.architecture() == xla_net.architecture()
    assert ragged.read("train_flops") == xla.read("train_flops")
    for v, w in zip(ragged_net.variables, xla_net.variables):
        np.testing.assert_allclose(v.numpy(), w.numpy(), rtol=1e-3, atol=1e-4, err_msg=v.path)
    images, labels = _data()[0]
    eval_a = ragged.eval_step((images, labels))
    eval_b = xla.eval_step((images, labels), planner.eval_capacities())
    np.testing.assert_allclose(float(eval_a["loss_sum"]), float(eval_b["loss_sum"]), rtol=1e-4)
    assert xla.num_traces == 1  # one set of capacities: one compilation


def test_overflow_drops_least_probable_structures_and_they_get_no_update():
    network, trainer = _pair("resnet20", jit_compile=True)
    group = network.channel_groups[STAGE3]
    group.logits.assign(tf.linspace(3.0, 2.0, group.size))  # every channel drawn (p > 0.88)
    seed = step_seed(trainer.seed, 0)
    draw = network.sample_context(seed, trainer.temperature, 0.0).channels[STAGE3].mask.numpy()
    capacities = {name: g.size for name, g in network.channel_groups.items()}
    capacities[STAGE3] = 8
    kernel = network.source.get_layer("logits").kernel  # the classifier reads stage 3
    before = kernel.numpy()
    counters_before = group.counters.numpy()
    results = trainer.train_step(_data()[0], capacities)
    kept = np.zeros(group.size, bool)
    kept[np.flatnonzero(draw)[:8]] = True  # logits fall with the index: the 8 most probable drawn
    assert float(results["dropped"]) == draw.sum() - 8 > 0
    assert float(results["sampled"][list(network.channel_groups).index(STAGE3)]) == draw.sum()
    changed = np.any(kernel.numpy() != before, axis=1)
    np.testing.assert_array_equal(changed, kept)
    np.testing.assert_array_equal(group.counters.numpy() > counters_before, kept)
    # A new set of capacities is a new trace; the same set again is not.
    capacities[STAGE3] = 16
    trainer.train_step(_data()[1], capacities)
    trainer.train_step(_data()[2], capacities)
    assert trainer.num_traces == 2


def test_planner_covers_the_draws_it_observed():
    network, trainer = _pair("resnet20", jit_compile=False)
    planner = CapacityPlanner(network, trainer.temperature, sigmas=0.0)
    names = list(network.channel_groups)
    first = planner.plan(0)
    observed = np.array([network.channel_groups[n].size for n in names], np.float64)
    planner.observe({"sampled": observed, "dropped": 3.0})
    resumed = CapacityPlanner(network, trainer.temperature, sigmas=0.0)
    resumed.load_state(planner.state())  # what a resumed run reads from its checkpoint
    assert resumed.plan(0) == planner.plan(0)
    planner.observe({"sampled": observed, "dropped": 0.0})
    second = planner.plan(0)
    assert planner.overflow_steps == 1 and planner.dropped == 3
    assert all(second[n] == network.channel_groups[n].size for n in names)
    assert all(first[n] <= second[n] for n in names)
    with pytest.raises(ValueError, match="headroom"):
        CapacityPlanner(network, trainer.temperature, headroom=0.5)
