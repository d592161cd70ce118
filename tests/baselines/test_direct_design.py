"""Direct design: a grown architecture trained from scratch, and refused bad sources."""

import json
import os

import keras
import numpy as np
import pytest

from tests.fixtures.processes import contract_problems, launch
from tfgrow import cost
from tfgrow.baselines import direct_design
from tfgrow.graph import counting
from tfgrow.models import basic3resnet

CONFIG = "configs/experiments/fashion_mnist_resnet20_direct_design.gin"


@pytest.mark.slow
def test_direct_design_has_exactly_the_source_runs_architecture(tmp_path):
    source = tmp_path / "grow"
    result = launch(
        source, "configs/experiments/fashion_mnist_resnet20_grow.gin", "configs/tiny.gin"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    grown = json.loads((source / "summary.json").read_text())
    design = tmp_path / "design"
    result = launch(design, CONFIG, "configs/tiny.gin", bindings=[f"SOURCE_RUN_DIR='{source}'"])
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((design / "summary.json").read_text())
    assert contract_problems(summary) == []
    assert summary["architecture"] == grown["architecture"]
    assert summary["blocks"] == grown["blocks"]
    assert (summary["params"], summary["flops"]) == (grown["params"], grown["flops"])
    assert (summary["params_full"], summary["flops_full"]) == (
        grown["params_full"],
        grown["flops_full"],
    )
    # The trained model: stock layers at the grown widths (stage 3's residual stream here).
    model = keras.models.load_model(design / "final_model.keras")
    assert counting.count_model(model) == (grown["params"], grown["flops"])
    assert model.get_layer("stage3_block2_conv2").filters == grown["architecture"]["stage3"]
    assert summary["steps"] == grown["steps"] == 10


def write_summary(directory, **fields):
    os.makedirs(directory, exist_ok=True)
    summary = {"method": "grow", "model": "resnet20", "dataset": "fashion_mnist", "epochs": 1}
    summary.update({"architecture": {"stage1": 4}, "blocks": {}, **fields})
    (directory / "summary.json").write_text(json.dumps(summary))


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"model": "vgg16"}, "Received: method='grow', model='vgg16', dataset='fashion_mnist'"),
        ({"method": "morphnet"}, "Received: method='morphnet'"),
        ({"architecture": {"stage1": 17}}, "Expected a width in [1, 16] for group 'stage1'"),
        ({"architecture": {"stage9": 1}}, "groups or blocks ['stage1', 'stage9'] differ"),
    ],
    ids=["other_model", "not_growing", "too_wide", "other_groups"],
)
def test_a_source_of_another_model_or_method_is_refused(tmp_path, fields, expected):
    write_summary(tmp_path, **fields)
    with pytest.raises(ValueError) as error:
        direct_design.read_source(str(tmp_path), "resnet20", "fashion_mnist", {"stage1": 16}, [])
    assert expected in str(error.value)


def test_an_unfinished_source_run_stops_the_launcher_with_a_message(tmp_path):
    source = tmp_path / "source"
    os.makedirs(source / "checkpoints")
    result = launch(
        tmp_path / "run", CONFIG, "configs/tiny.gin", bindings=[f"SOURCE_RUN_DIR='{source}'"]
    )
    assert result.returncode == 2  # a refused input (README, "Errors and what they say")
    assert "it has checkpoints but no summary.json: it has not finished" in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "run" / "summary.json")


def test_blocks_that_are_off_are_removed_and_the_costs_are_the_architectures():
    network = basic3resnet((8, 8, 1), 10, max_blocks_per_stage=3)
    widths = {name: max(1, group.size // 4) for name, group in network.channel_groups.items()}
    blocks = {name: 0 for name in network.all_block_names()}
    blocks.update({"stage1_block2": 1, "stage3_block3": 1})
    gated = {name: on for name, on in blocks.items() if name in network.gate_groups}
    model = direct_design.build_model(network, widths, blocks, seed=1)
    assert counting.count_model(model) == tuple(cost.count(network.layer_costs, widths, gated))
    names = {layer.name for layer in model.layers}
    assert "stage1_block2_conv1" in names and "stage2_block2_conv1" not in names
    # Fresh weights: BN at gamma 1, kernels not the growing network's.
    conv = model.get_layer("stage1_block2_conv1")
    grown = [layer for layer in network.layer_sequence if layer.name == "stage1_block2"][0]
    assert not np.allclose(conv.kernel.numpy(), grown.conv1.kernel.numpy()[..., :4, :4])
    np.testing.assert_array_equal(model.get_layer("stage1_block2_conv1_bn").gamma.numpy(), 1.0)
