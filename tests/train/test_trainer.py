"""A training step: detached structures stay put; counters, FLOPs and lambda advance."""

import numpy as np
import pytest
import tensorflow as tf

import tfgrow
from tests.fixtures.runs import tiny_basic3resnet, tiny_resnet
from tfgrow import cost
from tfgrow.budget import Budget
from tfgrow.masks import Temperature, step_seed
from tfgrow.models import vgg16_bn
from tfgrow.train.trainer import Trainer

STEPS_PER_EPOCH = 10
INNER = "stage2_block1_1_conv"  # the group of stage2_block1's inner conv (12 channels)


def _trainer(network, weight_decay=0.1, budget=None, **kwargs):
    return Trainer(
        network,
        tf.distribute.get_strategy(),
        global_batch_size=4,
        steps_per_epoch=STEPS_PER_EPOCH,
        learning_rate=lambda step: 0.1,
        mask_learning_rate=lambda step: 0.1,
        temperature=Temperature(num_epochs=3),
        weight_decay=weight_decay,
        seed=3,
        budget=budget or Budget(target=0.5),
        **kwargs,
    )


def _batch(network):
    images = tf.random.normal([4, *network.input_spec_shape], seed=1)
    return images, tf.constant([0, 1, 2, 0])


def _sampled_context(network, trainer):
    """The context the trainer's first step samples (same seed folding as the step)."""
    return network.sample_context(
        step_seed(trainer.seed, 0), trainer.temperature, 0.0, trainer.relaxation
    )


@pytest.mark.parametrize("channel_multiple", [1, 4])
def test_detached_structures_get_no_update_no_decay_no_momentum(channel_multiple):
    tf.keras.utils.set_random_seed(0)
    network = tiny_resnet(width_multiplier=0.375)  # stage widths 6, 12, 24
    network.channel_multiple = channel_multiple  # padding channels are computed, not updated
    for group in network.channel_groups.values():
        group.logits.assign(tf.zeros_like(group.logits))  # p = 0.5: a mixed draw
    trainer = _trainer(network)
    # A non-zero momentum buffer would move detached weights if they were updated at all.
    for velocity in trainer.weight_optimizer.velocities:
        velocity.assign(tf.ones_like(velocity))
    context = _sampled_context(network, trainer)
    # The first conv of stage1_block1 (and its batch norm): stage-1 stream -> its own group.
    conv = network.source.get_layer("stage1_block1_1_conv")
    batch_norm = network.source.get_layer("stage1_block1_1_bn")
    active_out = context.channels["stage1_block1_1_conv"].mask.numpy().astype(bool)
    active_in = context.channels["stem_conv"].mask.numpy().astype(bool)
    assert 0 < active_out.sum() < active_out.size and 0 < active_in.sum() < active_in.size
    before = {
        "kernel": conv.kernel.numpy(),
        "gamma": batch_norm.gamma.numpy(),
        "moving_mean": batch_norm.moving_mean.numpy(),
    }
    trainer.train_step(_batch(network))
    kernel_changed = conv.kernel.numpy() != before["kernel"]
    computed = active_in[:, None] & active_out[None, :]
    assert np.all(kernel_changed[:, :, computed])
    assert not np.any(kernel_changed[:, :, ~computed])
    gamma = batch_norm.gamma.numpy()
    np.testing.assert_array_equal(gamma[~active_out], before["gamma"][~active_out])
    assert np.all(gamma[active_out] != before["gamma"][active_out])
    np.testing.assert_array_equal(
        batch_norm.moving_mean.numpy()[~active_out], before["moving_mean"][~active_out]
    )


def test_counters_advance_for_active_structures_with_layer_priority():
    tf.keras.utils.set_random_seed(0)
    network = tiny_basic3resnet()
    for group in network.group_variables().values():
        group.logits.assign(tf.zeros_like(group.logits))
    trainer = _trainer(network)
    context = _sampled_context(network, trainer)
    trainer.train_step(_batch(network))
    parents = network.groups_parent()
    for name, group in network.channel_groups.items():
        expected = context.channels[name].mask.numpy()
        if parents[name] is not None:
            expected = expected * float(context.gates[parents[name]].on)
        np.testing.assert_allclose(group.counters.numpy(), expected / STEPS_PER_EPOCH)


def test_training_flops_count_the_sampled_subnetwork():
    tf.keras.utils.set_random_seed(0)
    network = tiny_resnet(depth=20, width_multiplier=0.375)
    trainer = _trainer(network)
    context = _sampled_context(network, trainer)
    widths, blocks = network.widths_and_blocks(context)
    widths = {k: int(v) for k, v in widths.items()}
    trainer.train_step(_batch(network))
    expected = 3 * cost.count(network.layer_costs, widths, blocks)[1] * 4
    assert trainer.read("train_flops") == expected
    assert trainer.read("train_flops_full") == 3 * network.full_cost()[1] * 4


def test_lambda_is_negative_under_budget_and_positive_over_it():
    network = tiny_resnet(width_multiplier=0.375)
    trainer = _trainer(network, budget=Budget(target=0.5, lambda_channel_base=0.5, update_steps=1))
    trainer.train_step(_batch(network))  # seed network: far under budget
    fraction = float(trainer.budget_fraction())
    assert float(trainer.lambda_channel) < 0
    for group in network.channel_groups.values():
        group.logits.assign(tf.ones_like(group.logits))  # everything on: over budget
    trainer.train_step(_batch(network))
    assert float(trainer.lambda_channel) == np.float32(0.5 * (1.0 - 0.5))
    assert fraction < 0.5


def test_unsampled_logits_move_only_by_the_budget_term():
    """METHOD.md Eq. 8: s_j -= lr * beta sigma'(beta s_j) * lambda when q_j = 0."""
    network = tiny_resnet(width_multiplier=0.375)
    trainer = _trainer(network, budget=Budget(target=0.9, lambda_channel_base=0.5, update_steps=1))
    context = _sampled_context(network, trainer)
    group = network.channel_groups[INNER]
    before = group.logits.numpy()
    trainer.train_step(_batch(network))
    lam = float(trainer.lambda_channel)
    sigma = 1 / (1 + np.exp(-before))
    expected = before - 0.1 * sigma * (1 - sigma) * lam  # beta = 1 at u = 0
    unsampled = ~context.channels[INNER].mask.numpy().astype(bool)
    assert unsampled.sum() > 0 and lam < 0
    np.testing.assert_allclose(group.logits.numpy()[unsampled], expected[unsampled], rtol=1e-5)
    assert np.all(group.logits.numpy()[unsampled] > before[unsampled])  # grows under budget


def test_sampled_logits_receive_the_task_gradient():
    """METHOD.md Eq. 8: s_j -= lr beta sigma'(beta s_j) (q_j dL/dm_j + lambda)."""
    tf.keras.utils.set_random_seed(0)
    network = tiny_resnet(width_multiplier=0.375)
    for group in network.channel_groups.values():
        group.logits.assign(tf.zeros_like(group.logits))
    trainer = _trainer(network, budget=Budget(target=None, lambda_channel_base=0.0))
    context = _sampled_context(network, trainer)
    images, labels = _batch(network)
    with tf.GradientTape() as tape:
        replay = network.sample_context(step_seed(trainer.seed, 0), trainer.temperature, 0.0)
        outputs = network.forward(images, network.dense_equivalent(replay))
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, outputs))
    group = network.channel_groups[INNER]
    task_gradient = tf.convert_to_tensor(tape.gradient(loss, group.logits)).numpy()
    before = group.logits.numpy()
    trainer.train_step((images, labels))  # lambda = 0: only the task moves the logits
    sampled = context.channels[INNER].mask.numpy().astype(bool)
    assert np.any(task_gradient[sampled] != 0) and np.all(task_gradient[~sampled] == 0)
    np.testing.assert_allclose(
        group.logits.numpy(), before - 0.1 * task_gradient, rtol=1e-3, atol=1e-6
    )


@pytest.mark.parametrize("builder", ["basic3resnet", "vgg"])
def test_compact_row_updates_match_the_dense_masked_update(builder):
    """`MaskedMomentum.row_step` (gather rows, update, scatter in place) is the masked full-size
    update restricted to the rows it touches: same weights, momentum and logits after steps
    with mixed draws, block gates (basic3resnet) and dense layers with a growing input (vgg)."""

    def run(compact):
        tf.keras.utils.set_random_seed(0)
        if builder == "vgg":
            network = tfgrow.grow(vgg16_bn((8, 8, 1), 3, plan=(6, "M", 8), hidden_units=6))
        else:
            network = tiny_basic3resnet(width_multiplier=0.375)
        network.channel_multiple = 4  # padding slots: computed, mask 0, not updated
        rng = np.random.default_rng(1)
        for group in network.group_variables().values():
            group.logits.assign(rng.normal(0.0, 1.0, group.logits.shape).astype(np.float32))
        trainer = _trainer(network, compact_updates=compact)
        for velocity in trainer.weight_optimizer.velocities:  # momentum moves what it touches
            velocity.assign(tf.ones_like(velocity))
        for _ in range(3):
            trainer.train_step(_batch(network))
        return network, trainer

    dense_net, dense = run(compact=False)
    compact_net, compact = run(compact=True)
    kernels = {
        id(rows.variable)
        for rows in compact_net.gather_kernel_rows(_sampled_context(compact_net, compact))
    }
    assert len(kernels) >= 3, "the compact path must actually cover several kernels"
    for v, w in zip(dense_net.variables, compact_net.variables):
        np.testing.assert_allclose(v.numpy(), w.numpy(), rtol=1e-5, atol=1e-6, err_msg=v.path)
    for v, w in zip(dense.weight_optimizer.velocities, compact.weight_optimizer.velocities):
        np.testing.assert_allclose(v.numpy(), w.numpy(), rtol=1e-5, atol=1e-6)
    # Entries never computed kept their velocity of 1 in both.
    assert any(np.any(v.numpy() == 1.0) for v in compact.weight_optimizer.velocities)
