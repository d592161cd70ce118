"""The console of a run (step N/M, epoch N/M, time left) and the JSON rule (null, never NaN)."""

import json
import math
import re

import numpy as np
import pytest
from absl import logging

from benchmarks.bad_inputs import captured_output
from tfgrow.train import progress
from tfgrow.train.run_directory import write_json


@pytest.fixture(autouse=True)
def info_logs():
    """The console logs at INFO, as the launchers set it."""
    level = logging.get_verbosity()
    logging.set_verbosity(logging.INFO)
    yield
    logging.set_verbosity(level)


class FakeClock:
    """time.perf_counter stand-in: every step takes `seconds` exactly."""

    def __init__(self, seconds):
        self.now = 0.0
        self.seconds = seconds

    def __call__(self):
        return self.now


def test_a_log_file_run_writes_step_epoch_and_time_left_every_interval(monkeypatch, caplog):
    clock = FakeClock(1.5)
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    console = progress.Progress(2, 5, log_every_steps=2, interactive=False)
    with caplog.at_level("INFO"):
        for step in range(1, 11):
            if step % 5 == 1:
                console.start_epoch(step // 5)
            clock.now += clock.seconds
            details = {"budget_fraction": "0.300"} if step % 2 == 0 or step == 5 else None
            console.update(step, {"loss": np.float32(0.25), "train_acc": 0.5}, details)
            if step % 5 == 0:
                console.end_epoch(step // 5 - 1, step, {"eval_acc": 0.75}, clock.now)
    lines = [record.getMessage() for record in caplog.records if "epoch" in record.getMessage()]
    interval = [line for line in lines if " done " not in line]
    # One line per 2 steps (and step 5, the last of epoch 1); the timer starts after step 1, so
    # at step 4 three steps took 4.5 s and 6 remain: 9 s.
    assert len(interval) == 6
    assert "epoch 1/2  step 5/10" in interval[2] and "epoch 2/2  step 6/10" in interval[3]
    assert (
        "epoch 1/2  step 4/10  loss 0.2500  train_acc 0.5000  budget_fraction 0.300"
        in (interval[1])
    )
    assert interval[1].endswith("0.67 steps/s  ETA 0:00:09")
    assert "epoch 2/2  step 10/10" in interval[5] and interval[5].endswith("ETA 0:00:00")
    done = [line for line in lines if " done " in line]
    assert done[0] == ("epoch 1/2 done  step 5/10  eval_acc 0.7500  elapsed 0:00:08  ETA 0:00:08")
    assert done[1].endswith("ETA 0:00:00")


def test_a_terminal_run_draws_a_keras_progress_bar_per_epoch():
    console = progress.Progress(2, 4, log_every_steps=100, interactive=True)
    with captured_output() as output:
        for epoch in range(2):
            console.start_epoch(epoch)
            for step in range(epoch * 4 + 1, epoch * 4 + 5):
                console.update(step, {"loss": 1.0})
            console.end_epoch(epoch, (epoch + 1) * 4, {"eval_acc": 0.5}, 1.0)
    text = re.sub(r"\x1b\[[0-9;]*m", "", output.getvalue())  # Keras' bold and colours
    assert "Epoch 1/2" in text and "Epoch 2/2" in text
    assert re.search(r"4/4 .*loss: 1\.0000", text), text
    assert "epoch 2/2 done  step 8/8  eval_acc 0.5000" in text


def test_durations_are_hours_minutes_seconds():
    assert progress.format_duration(3725.4) == "1:02:05"
    assert progress.format_duration(None) == "?"


def test_summary_json_holds_null_where_a_number_is_not_finite(tmp_path):
    path = str(tmp_path / "summary.json")
    write_json(
        path,
        {
            "eval_accuracy": float("nan"),
            "train_cost_savings": np.float64("inf"),
            "losses": [1.5, np.float32("nan"), -math.inf],
            "steps": np.int64(10),
            "nested": {"ok": True, "value": np.float32(0.25)},
        },
    )
    text = open(path).read()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {
        "eval_accuracy": None,
        "train_cost_savings": None,
        "losses": [1.5, None, None],
        "steps": 10,
        "nested": {"ok": True, "value": 0.25},
    }
