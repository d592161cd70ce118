"""Uniform pruning: one width fraction in every group, sized to the budget, from scratch."""

import json
import math

import numpy as np
import pytest

from tests.fixtures import graphs
from tests.fixtures.processes import contract_problems, launch
from tfgrow import run_export
from tfgrow.baselines import sizing
from tfgrow.budget import Budget
from tfgrow.graph import analysis as graph_lib
from tfgrow.graph import counting, slicing
from tfgrow.models import keras_resnet_cifar, mobilenet_v1


@pytest.mark.parametrize(
    "build",
    [
        lambda: keras_resnet_cifar((28, 28, 1), 10),
        lambda: mobilenet_v1((32, 32, 3), 10, width_multiplier=0.25),
        graphs.residual_add,
    ],
    ids=["resnet20", "mobilenet_v1", "residual_add"],
)
def test_params_at_widths_counts_what_the_rebuilt_model_holds(build):
    model = build()
    graph = graph_lib.analyze(model)
    rng = np.random.default_rng(0)
    for _ in range(3):
        widths = np.where(graph.fixed, graph.group_sizes, rng.integers(1, graph.group_sizes + 1))
        rebuilt = slicing.build_at_widths(model, graph, widths)
        assert sizing.params_at_widths(model, graph, widths) == counting.count_model(rebuilt)[0]


@pytest.mark.parametrize("metric", ["params", "flops"])
def test_uniform_widths_are_the_largest_one_fraction_that_meets_the_budget(metric):
    model = keras_resnet_cifar((28, 28, 1), 10)
    sized = sizing.uniform_widths(model, Budget(target=0.3, metric=metric))
    graph, multiplier, widths = sized.graph, sized.multiplier, sized.widths
    cost, full_cost = sized.cost, sized.full_cost
    prunable = ~graph.fixed
    expected = [math.ceil(multiplier * size - 1e-9) for size in graph.group_sizes[prunable]]
    assert list(widths[prunable]) == expected
    assert cost <= 0.3 * full_cost
    # One channel more in every group (the next multiplier) breaks the budget.
    cost_fn, _ = sizing.budget_cost(model, graph, metric)
    assert cost_fn(np.where(graph.fixed, graph.group_sizes, widths + 1)) > 0.3 * full_cost


@pytest.mark.slow
def test_a_tiny_uniform_run_has_uniform_widths_within_the_params_budget(tmp_path):
    result = launch(
        tmp_path, "configs/experiments/fashion_mnist_resnet20_uniform.gin", "configs/tiny.gin"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert contract_problems(summary) == []
    assert summary["params"] <= 0.3 * summary["params_full"]
    # 16/32/64 x 0.53125 = 9/17/34 in every layer of a stage: the same fraction up to rounding.
    multiplier = summary["width_multiplier"]
    full = {"stem": 16, "stage1": 16, "stage2": 32, "stage3": 64}
    for layer, width in summary["architecture"].items():
        if layer != "logits":
            assert width == math.ceil(multiplier * full[layer.split("_")[0]])
    assert summary["architecture"]["stage3_block2_1_conv"] == 34
    assert summary["train_cost_savings"] > 2.0
    # The launcher's export takes the final model and checks its counts against the summary.
    info = run_export.export_run(str(tmp_path), str(tmp_path / "export"))
    assert (info["params"], info["flops"]) == (summary["params"], summary["flops"])
