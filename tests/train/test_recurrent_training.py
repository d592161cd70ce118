"""Training steps of a grown language model through the launcher's Trainer: the units a step did
not sample keep their LSTM weights (no gradient, decay or momentum), stateful layers carry their
states from step to step, and XLA with static capacities trains like the ragged mode."""

import numpy as np
import pytest
import tensorflow as tf

from tests.fixtures import sequences
from tfgrow.growing.recurrent import reset_states
from tfgrow.masks import Temperature
from tfgrow.train.trainer import Trainer


def _trainer(variant, jit_compile=False, **settings):
    model, grown = sequences.grown_model(variant, channel_multiple=4)
    settings = {"learning_rate": lambda step: 0.1, "weight_decay": 1e-2, **settings}
    trainer = Trainer(
        grown,
        tf.distribute.get_strategy(),
        global_batch_size=sequences.BATCH,
        steps_per_epoch=4,
        mask_learning_rate=lambda step: 0.5,
        temperature=Temperature(num_epochs=2),
        seed=3,
        jit_compile=jit_compile,
        **settings,
    )
    return model, grown, trainer


def _batch(seed):
    tokens = sequences.tokens(seed)
    return tf.constant(tokens), tf.constant(np.roll(tokens, -1, axis=1))


@pytest.mark.parametrize("variant", ["lstm_stateful", "gru"])
def test_unsampled_units_keep_their_weights_and_states_carry_over(variant):
    model, grown, trainer = _trainer(variant)
    layer = model.get_layer("rnn2")
    cell, units, gates = layer.cell, layer.units, 4 if variant.startswith("lstm") else 3
    before = [cell.kernel.numpy(), cell.recurrent_kernel.numpy()]
    embeddings = model.get_layer("embedding").embeddings
    embeddings_before = embeddings.numpy()
    reset_states(grown)
    trainer.train_step(_batch(1))
    # The draw of step 0, recomputed: the same stateless seed.
    draw = trainer.growth.begin(tf.constant(0, tf.int64))
    sampled = draw.context.channels["rnn2"].mask.numpy() > 0
    assert 0 < sampled.sum() < units
    # Both kernels were updated row-compactly (rows at the active inputs and units).
    row_variables = {id(rows.variable) for rows in grown.gather_kernel_rows(draw.context)}
    assert {id(cell.kernel), id(cell.recurrent_kernel)} <= row_variables
    # The embedding (updated whole, masked: a column-compact update scatters element by element,
    # 1.75x the stock step against 1.41x) keeps its unsampled dimensions' columns.
    dimensions = draw.context.channels["embedding"].mask.numpy() > 0
    assert 0 < dimensions.sum() < dimensions.size
    np.testing.assert_array_equal(
        embeddings.numpy()[:, ~dimensions], embeddings_before[:, ~dimensions]
    )
    assert not np.allclose(embeddings.numpy()[:, dimensions], embeddings_before[:, dimensions])
    columns = np.concatenate([g * units + np.flatnonzero(~sampled) for g in range(gates)])
    after = [cell.kernel.numpy(), cell.recurrent_kernel.numpy()]
    for old, new in zip(before, after):
        np.testing.assert_array_equal(new[:, columns], old[:, columns])
        assert not np.allclose(new, old)
    np.testing.assert_array_equal(after[1][~sampled], before[1][~sampled])
    if layer.stateful:
        (h, c) = [s.numpy() for s in layer.states]
        assert np.any(h[:, sampled]) and not np.any(h[:, ~sampled]) and not np.any(c[:, ~sampled])
    assert np.isfinite(float(trainer.train_step(_batch(2))["loss_sum"]))


def test_xla_training_steps_match_the_ragged_mode():
    _, ragged_model, ragged = _trainer("lstm_stateful")
    _, xla_model, xla = _trainer("lstm_stateful", jit_compile=True)
    # The capacities holding the draws of steps 0 and 1 (the same stateless seeds): none drops.
    needs = {name: 0.0 for name in xla_model.channel_groups}
    for step in (0, 1):
        widths, _ = xla_model.widths_and_blocks(
            xla.growth.begin(tf.constant(step, tf.int64)).context
        )
        needs = {name: max(needs[name], float(widths[name])) for name in needs}
    capacities = xla_model.capacities_for(needs)
    assert any(capacities[n] < g.size for n, g in xla_model.channel_groups.items()), capacities
    reset_states(ragged_model)
    reset_states(xla_model)
    for seed in (1, 2):
        a = ragged.train_step(_batch(seed))
        b = xla.train_step(_batch(seed), capacities)
        assert float(b["dropped"]) == 0.0
        np.testing.assert_allclose(float(a["loss_sum"]), float(b["loss_sum"]), rtol=1e-4)
    for v, w in zip(ragged_model.variables, xla_model.variables):
        np.testing.assert_allclose(v.numpy(), w.numpy(), rtol=1e-3, atol=1e-4, err_msg=v.path)
    for name in ("rnn1", "rnn2"):
        for s, t in zip(
            ragged_model.source.get_layer(name).states, xla_model.source.get_layer(name).states
        ):
            np.testing.assert_allclose(s.numpy(), t.numpy(), rtol=1e-3, atol=1e-4)


def _plain_sgd_trainer(sparse_updates):
    model, grown, trainer = _trainer(
        "lstm",
        learning_rate=lambda step: 0.5,
        momentum=0.0,
        weight_decay=0.0,
        gradient_clip_norm=0.5,
    )
    assert trainer.sparse_updates  # plain SGD, no XLA, no loss scale
    trainer.sparse_updates = sparse_updates  # before the first trace
    return model, grown, trainer


def test_plain_sgd_updates_the_embeddings_looked_up_rows_only_and_like_the_dense_update():
    model, grown, sparse = _plain_sgd_trainer(True)
    _, dense_grown, dense = _plain_sgd_trainer(False)
    for v, w in zip(dense_grown.variables, grown.variables):
        w.assign(v)
    embeddings = model.get_layer("embedding").embeddings
    before = embeddings.numpy()
    # Repeated tokens: the sparse gradient's repeats are summed before clipping and scattering.
    batch = _batch(4)
    assert len(np.unique(batch[0].numpy())) < batch[0].numpy().size
    for seed in (4, 5):
        a = sparse.train_step(_batch(seed))
        b = dense.train_step(_batch(seed))
        np.testing.assert_allclose(float(a["loss_sum"]), float(b["loss_sum"]), rtol=1e-6)
    for v, w in zip(dense_grown.variables, grown.variables):
        np.testing.assert_allclose(w.numpy(), v.numpy(), rtol=1e-5, atol=1e-6, err_msg=v.path)
    looked_up = np.zeros(sequences.VOCABULARY, bool)
    looked_up[np.concatenate([_batch(s)[0].numpy().ravel() for s in (4, 5)])] = True
    assert not looked_up.all()
    np.testing.assert_array_equal(embeddings.numpy()[~looked_up], before[~looked_up])
    assert not np.allclose(embeddings.numpy()[looked_up], before[looked_up])
    # The sparse step scatters rows (Unique + ResourceScatterNdUpdate); the dense one does not.
    ops = {
        name: {
            op.type
            for op in trainer._train_function.get_concrete_function(
                _batch(4), None
            ).graph.get_operations()
        }
        for name, trainer in (("sparse", sparse), ("dense", dense))
    }
    assert "Unique" in ops["sparse"] and "Unique" not in ops["dense"]
