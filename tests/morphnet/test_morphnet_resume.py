"""MorphNet runs checkpoint every epoch of every phase: a run SIGKILLed inside its shrink phase
and again between phases ends identical to an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from tests.fixtures.processes import REPO, launch

EXPERIMENT = "configs/experiments/fashion_mnist_resnet20_morphnet_flops.gin"
# 4 steps per epoch; a 2-epoch shrink phase (checkpoints 4 and 8), then 2 epochs of the final
# training (12 and 16). The strength prunes channels within those 8 shrink steps.
BINDINGS = [
    "tfgrow.train.max_train_examples=128",
    "tfgrow.train.epochs=2",
    "tfgrow.MorphNet.shrink_epochs_ratio=1.0",
    "MORPHNET_STRENGTH=3e-6",
]
COMPARED = ("architecture", "params", "flops", "steps", "train_flops", "eval_accuracy")


def _summary(model_dir):
    with open(os.path.join(model_dir, "summary.json")) as f:
        return json.load(f)


def _kill_when_latest(model_dir, checkpoint_name):
    """Starts the run and SIGKILLs it once `checkpoint_name` is its latest checkpoint."""
    command = [
        sys.executable,
        "-m",
        "launchers.train",
        f"--model_dir={model_dir}",
        f"--gin_file={EXPERIMENT}",
        "--gin_file=configs/tiny.gin",
        *[f"--gin_bindings={b}" for b in BINDINGS],
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    state_file = os.path.join(model_dir, "checkpoints", "checkpoint")
    deadline = time.time() + 600
    while process.poll() is None and time.time() < deadline:
        if os.path.exists(state_file):
            with open(state_file) as f:
                if f'model_checkpoint_path: "{checkpoint_name}"' in f.read():
                    break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not os.path.exists(os.path.join(model_dir, "summary.json"))
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    assert latest == os.path.join(model_dir, "checkpoints", checkpoint_name)
    return latest


@pytest.mark.slow
def test_a_morphnet_run_killed_inside_and_between_phases_resumes_to_the_same_result(tmp_path):
    reference_dir, model_dir = tmp_path / "reference", tmp_path / "killed"
    reference = launch(reference_dir, EXPERIMENT, "configs/tiny.gin", bindings=BINDINGS)
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected = _summary(reference_dir)
    iteration = expected["morphnet"]["iterations"][0]
    assert iteration["learned_cost"] < expected["morphnet"]["seed_cost"]  # shrinking pruned

    # Killed after the shrink phase's first epoch (inside it), then after its last (between
    # the shrink phase and the final training).
    for checkpoint_name in ("ckpt-4", "ckpt-8"):
        killed_at = _kill_when_latest(str(model_dir), checkpoint_name)
        elapsed = tf.train.load_checkpoint(killed_at).get_tensor(
            "wall_clock/elapsed_s/.ATTRIBUTES/VARIABLE_VALUE"
        )
    result = launch(model_dir, EXPERIMENT, "configs/tiny.gin", bindings=BINDINGS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resumed from {killed_at} at phase 0, epoch 2" in result.stderr

    summary = _summary(model_dir)
    for key in COMPARED:
        assert summary[key] == expected[key], key
    assert summary["morphnet"]["iterations"] == expected["morphnet"]["iterations"]
    assert summary["eval_loss"] == pytest.approx(expected["eval_loss"], rel=1e-5)
    assert summary["wall_time_s"] > elapsed  # the killed sessions' time is counted
    assert json.loads((model_dir / "structure_final.json").read_text()) == json.loads(
        (reference_dir / "structure_final.json").read_text()
    )

    # The same protection as growing runs: another strength into the finished run stops.
    before = (reference_dir / "summary.json").read_bytes()
    bindings = [*BINDINGS, "MORPHNET_STRENGTH=1e-06"]
    rerun = launch(reference_dir, EXPERIMENT, "configs/tiny.gin", bindings=bindings)
    assert rerun.returncode == 2  # a refused input
    assert "tfgrow.MorphNet.strength was 3e-06, now 1e-06" in rerun.stderr, rerun.stderr[-3000:]
    assert (reference_dir / "summary.json").read_bytes() == before
