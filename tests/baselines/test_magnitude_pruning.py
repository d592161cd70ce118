"""Magnitude pruning (tfmot): fewer nonzero weights, the same FLOPs and training cost."""

import json

import numpy as np
import pytest

from tests.fixtures.processes import contract_problems, launch
from tfgrow.baselines import magnitude_pruning
from tfgrow.graph import counting
from tfgrow.models import keras_resnet_cifar


def test_the_kernel_sparsity_leaves_the_target_fraction_of_params():
    model = keras_resnet_cifar((28, 28, 1), 10)
    params = counting.count_model(model)[0]
    sparsity = magnitude_pruning.kernel_sparsity_for(model, 0.3)
    kernels = sum(
        int(np.prod(layer.kernel.shape)) for layer in model.layers if counting.layer_flops(layer)
    )
    assert (1.0 - sparsity) * kernels + (params - kernels) == pytest.approx(0.3 * params)
    with pytest.raises(ValueError, match="Received: tfgrow.Budget.target=0.001"):
        magnitude_pruning.kernel_sparsity_for(model, 0.001)


@pytest.mark.slow
def test_magnitude_pruning_keeps_the_dense_models_flops_and_training_cost(tmp_path):
    result = launch(
        tmp_path,
        "configs/experiments/fashion_mnist_resnet20_magnitude_pruning.gin",
        "configs/tiny.gin",
        bindings=[
            "tfgrow.MagnitudePruning.timing_rounds=2",
            "tfgrow.MagnitudePruning.timing_steps=2",
        ],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert contract_problems(summary) == []
    record = summary["magnitude_pruning"]
    # Counted on the pruned model's dense kernels: the full network's FLOPs, 62.0M per example.
    assert summary["flops"] == summary["flops_full"] == record["flops_dense_kernels"] == 62_043_904
    assert record["saves_flops"] is False
    assert summary["train_cost_savings"] == 1.0
    # The weights are sparse: ~30% of the params nonzero (tfmot rounds each layer's count).
    assert summary["params"] == pytest.approx(0.3 * summary["params_full"], rel=0.01)
    assert record["params_dense"] == summary["params_full"]
    assert record["flops_nonzero_kernels"] < 0.35 * summary["flops_full"]
    assert record["step_time_pruned_s"] > 0 and record["step_time_unpruned_s"] > 0
    ratio = record["step_time_pruned_s"] / record["step_time_unpruned_s"]
    assert record["step_time_ratio"] == pytest.approx(ratio)
    assert record["saves_training_time"] == (ratio < 0.95)
