"""tfgrow/latency.py: the lookup's mathematics, the cache, calibration and the in-step budget."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import tfgrow
from tests.fixtures import graphs
from tfgrow import cost as cost_lib
from tfgrow import latency
from tfgrow.budget import Budget
from tfgrow.growing.update import GrowthUpdate
from tfgrow.masks import Temperature


def _settings(tmp_path, **overrides):
    return latency.latency_settings(
        **{"granularity": 2, "max_grid_points": 8, "repeats": 1, "cache_dir": str(tmp_path)}
        | overrides
    )


def _network():
    """residual_add: group "a" (4 channels, tied with "b") feeding a dense head of 3."""
    return tfgrow.grow(graphs.residual_add(), grow_layers=False)


def test_grid_holds_multiples_of_the_granularity_and_the_full_width():
    assert latency.grid(20, 8, 8) == [8, 16, 20]
    assert latency.grid(16, 8, 8) == [8, 16]
    assert latency.grid(3, 8, 8) == [3]
    wide = latency.grid(2048, 8, 8)
    assert len(wide) == 8 and wide[0] == 8 and wide[-1] == 2048
    assert all(w % 8 == 0 for w in wide)


@pytest.mark.parametrize(
    "width, expected",
    [
        (8, [1, 0, 0]),  # on a grid point
        (5, [1, 0, 0]),  # rounded up to 8
        (17, [0, 0, 1]),  # rounded up to 24, clipped to the full width 20
        (12, [0, 1, 0]),  # rounded up to 16: a grid point
    ],
)
def test_interpolation_rounds_up_to_the_granularity(width, expected):
    points = [8, 16, 20]
    weights = latency._interpolation_weights(points, width, 8)
    np.testing.assert_allclose(weights, expected)
    in_graph = latency._interpolation_weights(points, tf.constant(width, tf.float64), 8)
    np.testing.assert_allclose(in_graph.numpy(), weights)


def test_interpolation_is_linear_between_sparse_grid_points():
    points = [8, 40, 64]
    weights = latency._interpolation_weights(points, 16, 8)  # 1/4 of the way from 8 to 40
    np.testing.assert_allclose(weights, [0.75, 0.25, 0.0])
    in_graph = latency._interpolation_weights(points, tf.constant(16.0, tf.float64), 8)
    np.testing.assert_allclose(in_graph.numpy(), weights)


def test_the_sum_is_the_cached_entries_at_the_rounded_widths(tmp_path):
    network = _network()
    table = latency.LatencyTable(network.layer_costs, 4, settings=_settings(tmp_path))
    assert table.measured == len(table._entries) > 0
    widths = {name: 3 for name in network.channel_groups}  # rounded up to 4 = full width
    full = table.full_widths()

    def rounded(width, full_width):
        return min(-(-width // 2) * 2, full_width)

    expected = 0.0
    for layer in table.layers:
        c_in, c_out = cost_lib.layer_widths(layer, widths)
        full_in, full_out = cost_lib.layer_widths(layer, full)
        key_in = 1 if layer.kind in ("depthwise", "batch_norm") else rounded(c_in, full_in)
        key = latency._key(layer, key_in, rounded(c_out, full_out), 4, "float32")
        expected += table._entries[key]
    assert table.layer_sum(widths) == pytest.approx(expected)
    tensors = {name: tf.constant(w) for name, w in widths.items()}
    assert float(table.layer_sum(tensors)) == pytest.approx(expected)


def test_a_second_table_reads_the_cache_and_a_damaged_cache_is_measured_again(tmp_path):
    network = _network()
    first = latency.LatencyTable(network.layer_costs, 4, settings=_settings(tmp_path))
    second = latency.LatencyTable(network.layer_costs, 4, settings=_settings(tmp_path))
    assert second.measured == 0
    for a, b in zip(first.tables, second.tables):
        np.testing.assert_array_equal(a, b)
    with open(first.cache_path, "w") as f:
        f.write('{"entries": [1, 2')  # a half-written file
    third = latency.LatencyTable(network.layer_costs, 4, settings=_settings(tmp_path))
    assert third.measured == first.measured
    with open(first.cache_path) as f:
        assert json.load(f)["device"] == latency.device_key()
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_calibration_passes_through_both_measured_steps(tmp_path):
    network = _network()
    table = latency.LatencyTable(network.layer_costs, 4, settings=_settings(tmp_path))
    rng = np.random.default_rng(0)
    batch = (
        tf.constant(rng.normal(size=(4, *graphs.INPUT_SHAPE)).astype(np.float32)),
        tf.constant(rng.integers(0, 3, 4).astype(np.int32)),
    )
    table.calibrate(network, batch, rounds=1, steps_per_round=1)
    measured = table.calibration["measured"]
    full = table.full_widths()
    small = {name: min(w, 2) for name, w in full.items()}
    assert table.predict(full) == pytest.approx(measured["full"])
    if table.calibration["layer_sums"]["full"] > table.calibration["layer_sums"]["small"]:
        assert table.predict(small) == pytest.approx(measured["small"])
    assert table.fraction(full) == pytest.approx(1.0)


def test_the_step_refreshes_lambda_from_the_predicted_time(tmp_path):
    network = _network()
    network.latency_table = latency.LatencyTable(
        network.layer_costs, 4, settings=_settings(tmp_path)
    )
    budget = Budget(target=0.5, metric="latency")
    update = GrowthUpdate(network, Temperature(num_epochs=1), 10, budget)
    widths, blocks = network.architecture()
    expected = network.latency_table.fraction(widths, blocks)
    assert float(update.budget_fraction()) == pytest.approx(expected)
    lambda_c, _ = update.lambdas(tf.constant(0, tf.int64))
    assert float(lambda_c) == pytest.approx(0.5 * (expected - 0.5))


def test_networks_without_input_sizes_and_a_missing_table_get_clear_errors(tmp_path):
    graph_network = _network()
    # Layer costs without the input sizes of their convs (LayerCosts written by hand may have none).
    unsized = [dataclasses.replace(layer, input_size=()) for layer in graph_network.layer_costs]
    assert any(layer.kind == "conv" for layer in unsized)
    with pytest.raises(ValueError, match="input size for the latency table"):
        latency.LatencyTable(unsized, 4, settings=_settings(tmp_path))
    widths, blocks = graph_network.architecture()
    with pytest.raises(ValueError, match="Expected a LatencyTable"):
        cost_lib.fraction(graph_network.layer_costs, widths, blocks, "latency")
