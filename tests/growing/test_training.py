"""A grown Keras model trains through the existing Trainer (METHOD.md §1.2, §1.4, Eq. 8)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfgrow
from tfgrow import cost
from tfgrow.budget import Budget
from tfgrow.graph import UnsupportedLayerError
from tfgrow.masks import Temperature, step_seed
from tfgrow.models import keras_resnet_cifar
from tfgrow.train.trainer import Trainer

STEPS_PER_EPOCH = 10


def _grown(**kwargs):
    keras.utils.set_random_seed(0)
    return tfgrow.grow(keras_resnet_cifar((8, 8, 1), 3, width_multiplier=0.5), **kwargs)


def _trainer(grown, budget=None, **kwargs):
    return Trainer(
        grown,
        tf.distribute.get_strategy(),
        global_batch_size=4,
        steps_per_epoch=STEPS_PER_EPOCH,
        learning_rate=lambda step: 0.1,
        mask_learning_rate=lambda step: 0.1,
        temperature=Temperature(num_epochs=3),
        weight_decay=0.1,
        seed=3,
        budget=budget or Budget(target=0.5, lambda_channel_base=0.5, update_steps=1),
        **kwargs,
    )


def _batch():
    return tf.random.normal([4, 8, 8, 1], seed=1), tf.constant([0, 1, 2, 0])


def _randomise_logits(grown, seed=1):
    rng = np.random.default_rng(seed)
    for group in grown.group_variables().values():
        group.logits.assign(rng.normal(0.0, 1.0, group.logits.shape).astype(np.float32))


def test_steps_move_logits_counters_flops_and_logits_of_the_network():
    grown = _grown(grow_layers=True)
    _randomise_logits(grown)
    trainer = _trainer(grown)
    images, labels = _batch()
    before_logits = {n: g.logits.numpy() for n, g in grown.group_variables().items()}
    before_outputs = grown.forward(images, grown.full_context()).numpy()
    context = grown.sample_context(step_seed(trainer.seed, 0), trainer.temperature, 0.0)
    widths, blocks = grown.widths_and_blocks(context)
    trainer.train_step((images, labels))
    # Counters: 1/steps_per_epoch for each structure active in the step, with layer priority.
    parents = grown.groups_parent()
    assert any(parent is not None for parent in parents.values())
    for name, group in grown.channel_groups.items():
        expected = context.channels[name].mask.numpy()
        if parents[name] is not None:
            expected = expected * float(context.gates[parents[name]].on)
        np.testing.assert_allclose(group.counters.numpy(), expected / STEPS_PER_EPOCH)
    # Training FLOPs: 3 x the sampled sub-network's forward FLOPs x batch (METHOD.md §1.7).
    expected_flops = 3 * cost.count(grown.layer_costs, widths, blocks)[1] * 4
    assert trainer.read("train_flops") == pytest.approx(float(expected_flops))
    assert trainer.read("train_flops_full") == 3 * grown.full_cost()[1] * 4
    # Every logit moves (unsampled ones by the budget term alone), and so does the function.
    for name, group in grown.group_variables().items():
        assert np.all(group.logits.numpy() != before_logits[name]), name
    assert not np.allclose(grown.forward(images, grown.full_context()).numpy(), before_outputs)


def test_one_draw_samples_every_group_at_its_probabilities_and_replays():
    """sample_context draws all groups from one stream: each structure still follows its own
    Bernoulli(sigma(beta s)), groups are not copies of each other, and a step replays."""
    grown = _grown(grow_layers=True)
    groups = grown.group_variables()
    for index, group in enumerate(groups.values()):
        group.logits.assign(tf.fill(group.logits.shape, float(index % 3)))  # p 0.5, 0.73, 0.88
    temperature = Temperature(num_epochs=3)
    gate_names = {block: group.name for block, group in grown.gate_groups.items()}

    def draw(step):
        context = grown.sample_context(step_seed(3, step), temperature, 0.0)
        masks = {name: active.mask.numpy() for name, active in context.channels.items()}
        for block, gate in context.gates.items():
            masks[gate_names[block]] = np.array([float(gate.on)])
        return masks

    draws = [draw(step) for step in range(300)]
    for name, replayed in draw(0).items():
        np.testing.assert_array_equal(replayed, draws[0][name])
    for index, (name, group) in enumerate(groups.items()):
        p = 1 / (1 + np.exp(-(index % 3)))
        frequency = np.mean([d[name] for d in draws])
        # 4 binomial standard deviations, plus the bias of keeping one channel when a group of
        # >= 8 draws none (0.5 ** 8 / 8 at most).
        assert abs(frequency - p) < 4 * np.sqrt(p * (1 - p) / (300 * group.size)) + 0.001, name
    # Two channel groups of one size and one probability draw differently: not one stream reused.
    names = list(groups)
    first, second = next(
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 3 :: 3]
        if groups[a].kind == "channel" and groups[a].size == groups[b].size
    )
    assert any(not np.array_equal(d[first], d[second]) for d in draws)


def test_unsampled_logits_move_only_by_the_budget_term():
    """METHOD.md Eq. 8: s_j -= lr * beta sigma'(beta s_j) * lambda when q_j = 0."""
    grown = _grown()
    trainer = _trainer(grown, Budget(target=0.9, lambda_channel_base=0.5, update_steps=1))
    context = grown.sample_context(step_seed(trainer.seed, 0), trainer.temperature, 0.0)
    name = "stage2_block1_1_conv"
    group = grown.channel_groups[name]
    before = group.logits.numpy()
    trainer.train_step(_batch())
    lam = float(trainer.lambda_channel)
    sigma = 1 / (1 + np.exp(-before))
    expected = before - 0.1 * sigma * (1 - sigma) * lam  # beta = 1 at u = 0
    unsampled = ~context.channels[name].mask.numpy().astype(bool)
    assert unsampled.sum() > 0 and lam < 0
    np.testing.assert_allclose(group.logits.numpy()[unsampled], expected[unsampled], rtol=1e-5)


def test_compact_row_updates_match_the_dense_masked_update():
    """Kernel rows gathered by `GrowingModel.gather_kernel_rows` and updated in place give the
    weights of the masked full-size update (`weight_masks`), with blocks and padded widths."""

    def run(compact):
        grown = _grown(grow_layers=True, channel_multiple=4)
        _randomise_logits(grown)
        trainer = _trainer(grown, compact_updates=compact)
        for velocity in trainer.weight_optimizer.velocities:
            velocity.assign(tf.ones_like(velocity))
        for _ in range(3):
            trainer.train_step(_batch())
        return grown, trainer

    dense_model, dense = run(compact=False)
    compact_model, compact = run(compact=True)
    context = compact_model.sample_context(step_seed(3, 0), compact.temperature, 0.0)
    assert len(compact_model.gather_kernel_rows(context)) >= 5
    for v, w in zip(dense_model.variables, compact_model.variables):
        np.testing.assert_allclose(v.numpy(), w.numpy(), rtol=1e-5, atol=1e-6, err_msg=v.path)
    # Entries never computed kept their velocity of 1.
    assert any(np.any(v.numpy() == 1.0) for v in compact.weight_optimizer.velocities)


def test_an_unsupported_layer_stops_with_its_name_and_what_to_do():
    inputs = keras.Input((8, 8, 3), name="images")
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.PReLU(name="learned_slope")(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    with pytest.raises(UnsupportedLayerError, match=r"'learned_slope' \(PReLU\).*Replace it"):
        tfgrow.grow(model)


def test_a_model_with_nothing_to_grow_is_refused_at_grow_time():
    # Only a logits layer: its output is the model's, so no group can grow and no block is gated.
    # Growing it used to fail on the first training step with a ConcatV2 error.
    inputs = keras.Input((8,), name="features")
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(inputs), name="linear")
    with pytest.raises(ValueError, match=r"nothing to grow in model 'linear'.*logits: model out"):
        tfgrow.grow(model)
    full = tfgrow.grow(model, growing=False)  # the full baseline still trains it as it is
    assert full(np.ones((2, 8), "float32")).shape == (2, 3)
