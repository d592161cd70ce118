"""MorphNet and width-multiplier runs through the launcher: outputs, summary and bad settings."""

import glob
import json
import os

import keras
import numpy as np
import pytest

from tests.fixtures.processes import contract_problems, launch
from tfgrow.graph import counting

RESNET_FLOPS = "configs/experiments/fashion_mnist_resnet20_morphnet_flops.gin"


@pytest.mark.slow
def test_two_iterations_write_structures_summary_and_a_stock_keras_final_model(tmp_path):
    # Strength high enough that 10 shrink steps remove channels, so expand has work to do.
    result = launch(
        tmp_path,
        RESNET_FLOPS,
        "configs/tiny.gin",
        bindings=["tfgrow.MorphNet.num_iterations=2", "MORPHNET_STRENGTH=3e-7"],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert contract_problems(summary) == []
    morphnet = summary["morphnet"]
    assert summary["steps"] == 30 and summary["num_compiles"] == 3
    assert [it["iteration"] for it in morphnet["iterations"]] == [0, 1]
    for iteration in morphnet["iterations"]:
        structure = json.loads(
            (tmp_path / f"structure_iter{iteration['iteration']}.json").read_text()
        )
        assert structure == iteration["learned_widths"]
        assert iteration["expanded_cost"] <= morphnet["target_cost"]
    assert summary["width_multiplier"] == morphnet["iterations"][-1]["multiplier"]
    assert summary["architecture"] == morphnet["iterations"][-1]["expanded_widths"]
    assert summary["flops"] == morphnet["final_cost"] <= 0.5 * summary["flops_full"]
    # The final model: stock Keras layers at the summary's widths and costs.
    model = keras.models.load_model(tmp_path / "final_model.keras")
    assert all(type(layer).__module__.startswith("keras") for layer in model.layers)
    assert counting.count_model(model) == (summary["params"], summary["flops"])
    assert (
        model.get_layer("stage3_block1_1_conv").filters
        == summary["architecture"]["stage3_block1_1_conv"]
    )
    assert model(np.zeros((1, 28, 28, 1), "float32")).shape == (1, 10)
    # TensorBoard: one directory per phase; no temporary files left behind.
    assert sorted(os.listdir(tmp_path / "train")) == ["shrink_iter0", "shrink_iter1", "train"]
    assert not glob.glob(str(tmp_path / "*.tmp")) and not glob.glob(str(tmp_path / ".tmp_*"))


@pytest.mark.slow
def test_width_multiplier_baseline_meets_the_target_with_the_uniform_multiplier(tmp_path):
    result = launch(
        tmp_path,
        "configs/experiments/fashion_mnist_resnet20_width_multiplier.gin",
        "configs/tiny.gin",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert contract_problems(summary) == []
    # 16/32/64 x 0.6875 = 11/22/44: 29.4M of 62.0M FLOPs; x0.6875(1 + 1e-6) would give 12/23/45.
    assert summary["width_multiplier"] == 0.6875
    assert summary["flops"] == 29_374_224 and summary["flops_full"] == 62_043_904
    assert summary["train_cost_savings"] > 1.0
    assert summary["architecture"]["stem_conv"] == 11


@pytest.mark.parametrize(
    "bindings, expected",
    [
        (["tfgrow.MorphNet.regularizer='latency'"], "Received: regularizer='latency'"),
        (["MORPHNET_STRENGTH=-1.0"], "Received: strength=-1.0"),
        (["tfgrow.MorphNet.gamma_threshold=0.0"], "Received: gamma_threshold=0.0"),
        (["TARGET_FRACTION=0.0001"], "Received: target=6204.3904"),
    ],
    ids=["regularizer", "strength", "threshold", "impossible_target"],
)
def test_bad_settings_stop_with_a_message_that_says_what_was_received(tmp_path, bindings, expected):
    result = launch(tmp_path, RESNET_FLOPS, "configs/tiny.gin", bindings=bindings)
    assert result.returncode == 2  # refused before any work
    assert expected in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "summary.json")
