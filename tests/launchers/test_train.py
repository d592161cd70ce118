"""The launcher end to end: every experiment config under tiny.gin, outputs, and bad input."""

import glob
import json
import os

import pytest

from tests.fixtures.processes import REPO, check_tiny_run_outputs, contract_problems, launch
from tfgrow.train.methods import PLAIN_BASELINES

# Baselines on stock Keras models and the random baseline run tiny in tests/baselines/, which
# check what each one is (direct design also needs a finished growing run as its source).
BASELINES = ("random", "random_matched", *PLAIN_BASELINES)
# Configs whose tiny run is a test elsewhere that checks these outputs too (one ResNet-50 run,
# about 100 s, instead of two).
RUN_ELSEWHERE = {
    "fashion_mnist_keras_resnet50_grow.gin": "tests/growing/test_plain.py",
}
EXPERIMENTS = sorted(
    path
    for path in glob.glob(os.path.join(REPO, "configs", "experiments", "*.gin"))
    if not path.endswith(tuple(f"_{method}.gin" for method in BASELINES))
    and os.path.basename(path) not in RUN_ELSEWHERE
)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=os.path.basename)
def test_every_experiment_runs_tiny_and_writes_its_outputs(experiment, tmp_path):
    result = launch(tmp_path, experiment, "configs/tiny.gin")
    check_tiny_run_outputs(result, tmp_path)


@pytest.mark.slow
def test_xla_mode_compiles_a_few_times_per_run_and_reports_capacities(tmp_path):
    result = launch(
        tmp_path,
        "configs/experiments/fashion_mnist_resnet20_grow.gin",
        "configs/tiny.gin",
        "configs/modes/xla.gin",
        bindings=["tfgrow.train.epochs=3"],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "summary.json") as f:
        summary = json.load(f)
    assert contract_problems(summary) == []
    assert summary["jit_compile"] is True
    assert 1 <= summary["num_compiles"] <= 3  # at most one training compile per epoch
    assert summary["capacity_overflows"] >= 0 and summary["capacity_dropped"] >= 0
    # Groups are named by their first conv (`stem_conv` carries stage 1's residual stream).
    sizes = {"stem": 16, "stage1": 16, "stage2": 32, "stage3": 64}
    for group, capacity in summary["capacities"].items():
        assert capacity % 4 == 0 and capacity <= sizes[group.split("_")[0]]
        assert summary["architecture"][group] <= capacity


@pytest.mark.parametrize(
    "bindings, expected",
    [
        (["tfgrow.train.epoch=3"], "did you mean tfgrow.train.epochs"),
        (["tfgrow.Budget.target=1.5"], "Received: target=1.5"),
        (["tfgrow.make_strategy.name='gpu_cluster'"], "Received: name='gpu_cluster'"),
        (["tfgrow.train.dataset='no_such_dataset'"], "no_such_dataset"),
        (["tfgrow.train.learning_rate=1e30"], "Non-finite training loss"),
        (
            [
                "tfgrow.make_strategy.name='mirrored'",
                "tfgrow.make_strategy.num_cpu_devices=2",
                "tfgrow.train.jit_compile=True",
            ],
            "Received MirroredStrategy with 2 replicas",
        ),
    ],
    ids=["unknown_gin_name", "budget", "strategy", "dataset", "nan_loss", "xla_mirrored"],
)
def test_bad_input_stops_with_a_message_that_says_what_was_received(tmp_path, bindings, expected):
    result = launch(
        tmp_path,
        "configs/experiments/fashion_mnist_resnet20_grow.gin",
        "configs/tiny.gin",
        bindings=["tfgrow.train.mock_data_if_missing=False", *bindings],
    )
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert not os.path.exists(tmp_path / "summary.json")
