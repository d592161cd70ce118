"""LSTM, GRU and Embedding layers in the channel graph: groups, cost terms, counts and refusals."""

import keras
import numpy as np
import pytest

import tfgrow
from tests.fixtures import sequences
from tests.fixtures.sequences import VARIANTS
from tfgrow import cost
from tfgrow.graph import analyze, build_at_widths, count_model
from tfgrow.graph.analysis import UnsupportedLayerError

L = keras.layers


def test_embedding_and_each_recurrent_layer_start_a_prunable_group():
    graph = analyze(sequences.language_model())
    assert graph.group_names == ["tokens", "embedding", "rnn1", "rnn2", "logits"]
    assert graph.fixed_groups == {"tokens": "model input", "logits": "model output"}
    assert graph.input_layouts["rnn1"] == graph.output_layouts["embedding"]
    # The dropout passes rnn1's units through to rnn2.
    assert graph.input_layouts["rnn2"] == graph.output_layouts["rnn1"]
    assert list(graph.group_sizes) == [sequences.STEPS, 8, 12, 10, sequences.VOCABULARY]


def test_graph_cost_counts_the_recurrent_kernel_quadratically():
    # MorphNet's cost (kernels only): 4 (n u + u u) per LSTM, 2 * 4 * T (n u + u u) FLOPs.
    graph = analyze(sequences.language_model())
    widths = graph.full_widths()
    widths[1:4] = [3, 5, 4]
    vocabulary, steps = sequences.VOCABULARY, sequences.STEPS
    lstm_weights = 4 * (3 * 5 + 5 * 5) + 4 * (5 * 4 + 4 * 4)
    assert graph.cost(widths, "size") == vocabulary * 3 + lstm_weights + 4 * vocabulary
    expected_flops = 2 * steps * lstm_weights + 2 * steps * 4 * vocabulary
    assert graph.cost(widths, "flops") == expected_flops
    # Doubling a group doubles its input term and quadruples its recurrent term.
    assert np.array_equal(graph.count_matrix("output")[2], [0, 0, 1, 0, 0])
    assert np.array_equal(graph.count_matrix("input")[2], [0, 0, 1, 0, 0])


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_counts_at_any_widths_equal_the_stock_model_built_there(name):
    model = sequences.language_model(**VARIANTS[name])
    grown = tfgrow.grow(model)
    graph = grown.graph
    assert grown.full_cost() == count_model(model)
    assert grown.full_cost()[0] == model.count_params()
    rng = np.random.default_rng(0)
    for _ in range(3):
        widths = graph.full_widths()
        for g in np.flatnonzero(graph.prunable):
            widths[g] = rng.integers(1, graph.group_sizes[g] + 1)
        by_name = {graph.group_names[g]: int(widths[g]) for g in np.flatnonzero(graph.prunable)}
        stock = build_at_widths(model, graph, widths)
        assert stock.get_layer("rnn1").units == by_name["rnn1"]
        assert cost.count(grown.layer_costs, by_name) == count_model(stock)
        assert cost.count(grown.layer_costs, by_name)[0] == stock.count_params()


def test_lstm_counts_by_hand():
    # Embedding 11 x 3; LSTM(3 -> 5): 4 (3*5 + 5*5 + 5); LSTM(5 -> 4): 4 (5*4 + 4*4 + 4);
    # Dense 4 -> 11 with bias. FLOPs: 2 * 4 (n u + u u) per step, times 5 steps, + dense.
    grown = tfgrow.grow(sequences.language_model())
    params, flops = cost.count(grown.layer_costs, {"embedding": 3, "rnn1": 5, "rnn2": 4})
    assert params == 33 + 4 * 45 + 4 * 40 + 4 * 11 + 11
    assert flops == 5 * 2 * 4 * (15 + 25) + 5 * 2 * 4 * (20 + 16) + 5 * 2 * 4 * 11


def test_gru_reset_after_counts_an_input_and_a_recurrent_bias():
    # Keras' GRU(reset_after=True) bias is [2, 3u]: 6u, against 3u without.
    after = tfgrow.grow(sequences.language_model("gru"))
    before = tfgrow.grow(sequences.language_model("gru", reset_after=False))
    widths = {"embedding": 3, "rnn1": 5, "rnn2": 4}
    difference = (
        cost.count(after.layer_costs, widths)[0] - cost.count(before.layer_costs, widths)[0]
    )
    assert difference == 3 * 5 + 3 * 4


def _lstm_model(**arguments):
    inputs = keras.Input((5, 3), name="sequence")
    x = L.LSTM(4, name="lstm", **arguments)(inputs)
    return keras.Model(inputs, L.Dense(2, name="logits")(x))


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"dropout": 0.2}, "dropout=0.2.*keras.layers.Dropout"),
        ({"recurrent_dropout": 0.2}, "recurrent_dropout=0.2"),
        ({"go_backwards": True}, "go_backwards"),
    ],
)
def test_unsupported_recurrent_settings_are_refused_by_name(arguments, message):
    with pytest.raises(UnsupportedLayerError, match=f"'lstm'.*{message}"):
        analyze(_lstm_model(**arguments))


def test_unsupported_recurrent_graphs_are_refused_by_name():
    inputs = keras.Input((5,), dtype="int32", name="tokens")
    x = L.Embedding(7, 4, mask_zero=True, name="embedding")(inputs)
    with pytest.raises(UnsupportedLayerError, match="'embedding'.*mask_zero"):
        analyze(keras.Model(inputs, L.LSTM(3, name="lstm")(x)))
    sequence = keras.Input((5, 3), name="sequence")
    x = L.Bidirectional(L.LSTM(3), name="both_ways")(sequence)
    with pytest.raises(UnsupportedLayerError, match="'both_ways'.*Bidirectional"):
        analyze(keras.Model(sequence, x))
    state = keras.Input((3,), name="state")
    x = L.GRU(3, name="gru")(sequence, initial_state=state)
    with pytest.raises(UnsupportedLayerError, match="'gru'.*initial_state"):
        analyze(keras.Model([sequence, state], x))
    unknown = keras.Input((None, 3), name="sequence")
    with pytest.raises(UnsupportedLayerError, match="'gru'.*sequence length"):
        analyze(keras.Model(unknown, L.GRU(3, name="gru")(unknown)))
