"""Expand (METHOD.md §2): the largest width multiplier meeting a target, exact after rounding."""

import numpy as np
import pytest

from tests.fixtures import graphs
from tfgrow.graph import counting, slicing
from tfgrow.graph.analysis import analyze
from tfgrow.models.keras_resnet import keras_resnet_cifar
from tfgrow.morphnet.expand import expand, scaled_widths


@pytest.fixture(scope="module")
def resnet20():
    model = keras_resnet_cifar((28, 28, 1), 10)
    return model, analyze(model)


@pytest.mark.parametrize("resource", ["flops", "size"])
@pytest.mark.parametrize("fraction", [0.3, 0.5, 1.0])
def test_result_meets_the_target_and_a_slightly_larger_multiplier_does_not(
    resnet20, resource, fraction
):
    _, graph = resnet20
    rng = np.random.default_rng(0)
    learned = np.where(graph.fixed, graph.group_sizes, rng.integers(1, graph.group_sizes + 1))
    target = fraction * graph.cost(graph.full_widths(), resource)
    multiplier, widths, cost = expand(graph, learned, target, resource)
    assert cost == graph.cost(widths, resource) <= target
    assert np.array_equal(widths, scaled_widths(graph, learned, multiplier))
    larger = scaled_widths(graph, learned, multiplier * (1 + 1e-6))
    assert graph.cost(larger, resource) > target


def test_seed_widths_at_the_seed_cost_give_multiplier_one(resnet20):
    _, graph = resnet20
    multiplier, widths, _ = expand(
        graph, graph.full_widths(), graph.cost(graph.full_widths(), "flops"), "flops"
    )
    assert multiplier == 1.0 and np.array_equal(widths, graph.full_widths())


def test_expanded_cost_is_the_counted_cost_of_the_built_model(resnet20):
    model, graph = resnet20
    target = 0.5 * graph.cost(graph.full_widths(), "flops")
    _, widths, cost = expand(graph, graph.full_widths(), target, "flops")
    assert counting.count_model(slicing.build_at_widths(model, graph, widths))[1] == cost


def test_wider_than_the_seed_is_possible():
    # Learned widths of a third of the seed expand past the seed's own widths to reach its cost.
    model = graphs.plain_chain()
    graph = analyze(model)
    learned = np.where(graph.fixed, graph.group_sizes, 1)
    multiplier, widths, _ = expand(
        graph, learned, graph.cost(graph.full_widths(), "flops"), "flops"
    )
    assert multiplier > 1 and widths[~graph.fixed].max() > 1
    built = slicing.build_at_widths(model, graph, widths)
    assert counting.count_model(built)[1] == graph.cost(widths, "flops")


def test_a_target_below_the_one_channel_network_stops_with_a_message(resnet20):
    _, graph = resnet20
    minimum = graph.cost(graph.minimal_widths(), "flops")
    with pytest.raises(ValueError, match=f"at least {minimum} flops.*Received: target=100"):
        expand(graph, graph.full_widths(), 100, "flops")
