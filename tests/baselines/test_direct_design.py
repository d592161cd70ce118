"""Direct design: a grown architecture trained from scratch, and refused bad sources."""

import json
import os

import keras
import numpy as np
import pytest

import tfgrow
from tests.fixtures.processes import contract_problems, launch
from tfgrow import cost, models
from tfgrow.baselines import direct_design
from tfgrow.graph import counting

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
    # The trained model: the stock Keras ResNet-20 at the grown widths (an inner conv's here).
    model = keras.models.load_model(design / "final_model.keras")
    assert counting.count_model(model) == (grown["params"], grown["flops"])
    inner = "stage3_block2_1_conv"
    assert model.get_layer(inner).filters == grown["architecture"][inner]
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
    # Basic3ResNet at 3 blocks per stage; stage1_block2's first conv and BN are checked.
    conv_name, bn_name = "stage1_block2_1_conv", "stage1_block2_1_bn"
    network = tfgrow.grow(
        models.autogrow_basic3resnet((8, 8, 1), 10, max_blocks_per_stage=3), grow_layers=True
    )
    widths = {name: max(1, group.size // 4) for name, group in network.channel_groups.items()}
    blocks = {name: 0 for name in network.all_block_names()}
    blocks.update({"stage1_block2_add": 1, "stage3_block3_add": 1})
    gated = {name: on for name, on in blocks.items() if name in network.gate_groups}
    model = direct_design.build_model(network, widths, blocks, seed=1)
    assert counting.count_model(model) == tuple(cost.count(network.layer_costs, widths, gated))
    names = {layer.name for layer in model.layers}
    assert conv_name in names and conv_name.replace("stage1", "stage2") not in names
    # Fresh weights: BN at gamma 1, kernels not the growing network's.
    kernel = model.get_layer(conv_name).kernel.numpy()
    source_kernel = network.source.get_layer(conv_name).kernel.numpy()
    assert not np.allclose(kernel, source_kernel[..., :4, :4])
    np.testing.assert_array_equal(model.get_layer(bn_name).gamma.numpy(), 1.0)


def test_a_plain_block_that_is_on_is_its_branch_alone():
    source = models.autogrow_plain3net((8, 8, 1), 10, max_blocks_per_stage=2)
    network = tfgrow.grow(source, plain_blocks=models.plain_blocks(source), grow_layers=True)
    widths = {name: group.size for name, group in network.channel_groups.items()}
    blocks = {name: 1 for name in network.all_block_names()}
    model = direct_design.build_model(network, widths, blocks, seed=1)
    # The stock Plain3Net: no `m F(x) + (1 - m) x` mixes, no rescaling.
    assert counting.count_model(model) == counting.count_model(network.source)
    assert not [layer.name for layer in model.layers if layer.name.endswith(("_mix", "_scale"))]
