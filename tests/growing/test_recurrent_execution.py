"""LSTM, GRU and Embedding in the graph engine (METHOD.md §1.8).

(a) For the same sampled masks, compact execution (only the active units, gathered gate blocks)
gives the outputs and gradients of dense execution (full width, the masked recurrence with
unsampled units at mask value 0), stateful layers included (their states too).
(b) With every unit on and mask values 1, the grown model computes the stock Keras model.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfgrow
from tests.fixtures import sequences
from tests.fixtures.sequences import VARIANTS, grown_model, set_random_states
from tfgrow.growing.recurrent import reset_states
from tfgrow.growing.update import assign_all
from tfgrow.latency import LatencyTable
from tfgrow.masks import Temperature
from tfgrow.precision import dtype_policy_scope


def outputs_and_gradients(grown, context, tokens):
    with tf.GradientTape() as tape:
        outputs = grown.forward(tokens, context)
        loss = tf.reduce_sum(tf.sin(3.0 * outputs))
    gradients = tape.gradient(loss, grown.trainable_variables)
    return outputs.numpy(), [
        None if g is None else tf.convert_to_tensor(g).numpy() for g in gradients
    ]


def assert_gradients_close(grown, first, second):
    for variable, a, b in zip(grown.trainable_variables, first, second):
        a = np.zeros(variable.shape) if a is None else a
        b = np.zeros(variable.shape) if b is None else b
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=variable.path)


def sampled_context(grown, seed=0, training=True):
    context = grown.sample_context(tf.constant([seed, 7], tf.int64), Temperature(), 0.5)
    context.training = training
    widths, _ = grown.widths_and_blocks(context)
    sizes = {name: group.size for name, group in grown.channel_groups.items()}
    assert all(0 < float(widths[name]) < sizes[name] for name in sizes), widths
    return context


@pytest.mark.parametrize("training", [True, False], ids=["training", "inference"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_compact_matches_dense_outputs_gradients_and_states(variant, training):
    model, grown = grown_model(variant)
    tokens = sequences.tokens()
    context = sampled_context(grown, training=training)
    results, final_states = [], []
    for run_context in (context, grown.dense_equivalent(context)):
        set_random_states(model, 5)
        results.append(outputs_and_gradients(grown, run_context, tokens))
        final_states.append(
            [np.array(value) for _, value in run_context.state_updates]
            if training
            else [
                s.numpy() for layer in model.layers for s in (getattr(layer, "states", None) or [])
            ]
        )
    (compact, compact_gradients), (dense, dense_gradients) = results
    np.testing.assert_allclose(compact, dense, rtol=1e-5, atol=1e-6)
    assert_gradients_close(grown, compact_gradients, dense_gradients)
    # Stateful: the states written back (queued in training, assigned in inference) agree, and
    # are 0 at the units this step did not compute.
    # Two layers with (h, c) each for an LSTM, h for a GRU.
    expected_count = {"lstm_stateful": 4, "gru_stateful": 2}.get(variant, 0)
    assert len(final_states[0]) == expected_count
    for a, b in zip(*final_states):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for layer_name in ("rnn1", "rnn2"):
        layer = model.get_layer(layer_name)
        if layer.stateful and not training:
            inactive = context.channels[layer_name].mask.numpy() == 0
            assert inactive.any() and not np.any(layer.states[0].numpy()[:, inactive])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_full_network_computes_the_stock_keras_model(variant):
    model, grown = grown_model(variant)
    batches = [sequences.tokens(seed) for seed in (1, 2)]
    # Two consecutive batches: a stateful model carries its states from the first to the second.
    reset_states(grown)
    expected = [model(batch).numpy() for batch in batches]
    reset_states(grown)
    computed = [grown.forward(batch, grown.full_context()).numpy() for batch in batches]
    np.testing.assert_allclose(computed, expected, rtol=1e-5, atol=1e-6)
    # Training mode: the state writes are queued and applied by the step.
    reset_states(grown)
    computed = []
    for batch in batches:
        context = grown.full_context(training=True)
        computed.append(grown.forward(batch, context).numpy())
        assign_all(context.state_updates)
    np.testing.assert_allclose(computed, expected, rtol=1e-5, atol=1e-6)


def test_reset_states_zeroes_every_stateful_layer_of_the_source_model():
    model, grown = grown_model("lstm_stateful")
    set_random_states(model, 1)
    assert reset_states(grown) == ["rnn1", "rnn2"]
    assert all(
        not np.any(s.numpy()) for name in ("rnn1", "rnn2") for s in model.get_layer(name).states
    )
    assert reset_states(sequences.language_model()) == []


def test_inference_runs_kept_recurrent_units_at_mask_value_one():
    # H(s): the embedding's kept dimensions carry sigma(beta s), the LSTM units 1 (their value
    # would multiply the cell state, which no stock LSTM can hold; tfgrow.growing.structures).
    _, grown = grown_model("lstm")
    context = grown.deterministic_context(Temperature(), 0.5)
    np.testing.assert_array_equal(context.channels["rnn1"].values.numpy(), 1.0)
    assert np.any(context.channels["embedding"].values.numpy() < 0.9)


def _ragged_and_xla(grown, tokens, training, seed=3):
    """Outputs and gradients for one draw: ragged widths (one trace without XLA) and static
    capacities (the smallest ladder rungs holding the draw) compiled with XLA."""
    step_seed = tf.constant([seed, 7], tf.int64)
    widths, _ = grown.widths_and_blocks(grown.sample_context(step_seed, Temperature(), 0.5))
    capacities = grown.capacities_for({name: float(w) for name, w in widths.items()})
    assert any(capacities[n] < g.size for n, g in grown.channel_groups.items()), capacities

    def run(capacities):
        context = grown.sample_context(step_seed, Temperature(), 0.5, capacities=capacities)
        context.training = training
        with tf.GradientTape() as tape:
            outputs = grown.forward(tokens, context)
            loss = tf.reduce_sum(tf.sin(3.0 * outputs))
        gradients = tape.gradient(loss, grown.trainable_variables)
        gradients = [
            tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
            for v, g in zip(grown.trainable_variables, gradients)
        ]
        return outputs, gradients, [value for _, value in context.state_updates]

    ragged = tf.function(lambda: run(None), autograph=False)
    xla = tf.function(lambda: run(capacities), autograph=False, jit_compile=True)
    return ragged, xla


@pytest.mark.parametrize("variant", ["lstm", "gru", "lstm_stateful"])
def test_xla_static_capacities_match_ragged_widths(variant):
    model, grown = grown_model(variant, channel_multiple=4)
    tokens = sequences.tokens(4)
    ragged, xla = _ragged_and_xla(grown, tokens, training=True)
    results = []
    for function in (ragged, xla):
        set_random_states(model, 2)
        results.append([np.asarray(t) for t in tf.nest.flatten(function())])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # Inference under XLA assigns a stateful layer's states inside the compiled function.
    ragged, xla = _ragged_and_xla(grown, tokens, training=False)
    states = []
    for function in (ragged, xla):
        set_random_states(model, 2)
        function()
        states.append(
            [s.numpy() for name in ("rnn1", "rnn2") for s in (model.get_layer(name).states or [])]
        )
    for a, b in zip(*states):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("variant", ["lstm", "gru_stateful"])
def test_mixed_bfloat16_computes_the_stock_model_and_compact_matches_dense(variant):
    # Gates and states in bfloat16 like Keras' cells, float32 weights and gradients; the
    # outputs differ from Keras' by bfloat16 rounding (8 bits: ~0.4% per op).
    with dtype_policy_scope("mixed_bfloat16"):
        model, grown = grown_model(variant)
    tokens = sequences.tokens(1)
    reset_states(grown)
    expected = model(tokens).numpy().astype(np.float32)
    reset_states(grown)
    computed = grown.forward(tokens, grown.full_context()).numpy()
    np.testing.assert_allclose(computed, expected, atol=3e-2 * np.abs(expected).max())
    context = sampled_context(grown)
    compact, compact_gradients = outputs_and_gradients(grown, context, tokens)
    dense, dense_gradients = outputs_and_gradients(grown, grown.dense_equivalent(context), tokens)
    np.testing.assert_allclose(compact, dense, atol=3e-2 * np.abs(dense).max())
    assert all(g is None or g.dtype == np.float32 for g in compact_gradients)


def test_latency_budget_refuses_recurrent_layers():
    # The latency table times each entry as one op; an LSTM's time is T steps of gated matmuls.
    _, grown = grown_model("lstm")
    with pytest.raises(ValueError, match="LSTM/GRU/Embedding entries.*'params' or 'flops'"):
        LatencyTable(grown.layer_costs, batch_size=sequences.BATCH)


def test_a_fixed_embedding_keeps_its_width_and_survives_save_and_load(tmp_path):
    # The paper grows the LSTM layers of its language model, not the embedding.
    model = sequences.language_model()
    grown = tfgrow.grow(model, fixed_layers=("embedding",))
    assert set(grown.channel_groups) == {"rnn1", "rnn2"}
    assert grown.architecture()[0] == {"rnn1": 1, "rnn2": 1}
    context = sampled_context(grown)
    first = outputs_and_gradients(grown, context, sequences.tokens())
    second = outputs_and_gradients(grown, grown.dense_equivalent(context), sequences.tokens())
    np.testing.assert_allclose(first[0], second[0], rtol=1e-4, atol=1e-5)
    assert_gradients_close(grown, first[1], second[1])
    grown.save(tmp_path / "grown.keras")
    restored = keras.models.load_model(tmp_path / "grown.keras")
    assert restored.fixed_layers == ("embedding",)
    assert set(restored.channel_groups) == {"rnn1", "rnn2"}
