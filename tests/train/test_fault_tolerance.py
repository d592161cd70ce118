"""Runs survive faults: a SIGKILLed run resumes to the result of an uninterrupted one, a corrupt
checkpoint stops with the file's name and the way back, a non-finite loss stops the run at its
step and keeps the last good checkpoint, and equal seeds give equal runs."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.fixtures.processes import REPO
from tests.fixtures.runs import network_and_trainer
from tfgrow.train.checkpoint import CheckpointError, RunCheckpoints, make_checkpoint

EXPERIMENT = "configs/experiments/fashion_mnist_resnet20_grow.gin"
LANGUAGE_MODEL = "configs/experiments/wordnet_glosses_lstm_grow.gin"
# 4 epochs of 20 steps: a few seconds each, so the kill lands while the run is still going.
RUN_BINDINGS = ["tfgrow.train.epochs=4", "tfgrow.train.max_train_examples=640"]
COMPARED = ("architecture", "blocks", "params", "flops", "steps", "train_flops", "eval_accuracy")


def _command(model_dir, bindings=RUN_BINDINGS, experiment=EXPERIMENT):
    command = [sys.executable, "-m", "launchers.train", f"--model_dir={model_dir}"]
    command += [f"--gin_file={experiment}", "--gin_file=configs/tiny.gin"]
    return command + [f"--gin_bindings={b}" for b in bindings]


def _run(model_dir, bindings=RUN_BINDINGS, timeout=600, experiment=EXPERIMENT):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        _command(model_dir, bindings, experiment),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _summary(model_dir):
    with open(os.path.join(model_dir, "summary.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("reference")
    result = _run(model_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return _summary(model_dir)


def _assert_same_run(summary, reference):
    for key in COMPARED:
        assert summary[key] == reference[key], key
    assert summary["eval_loss"] == pytest.approx(reference["eval_loss"], rel=1e-5)


@pytest.mark.slow
def test_same_seed_gives_the_same_architecture_and_metrics(reference_run, tmp_path):
    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_same_run(_summary(tmp_path), reference_run)


def _kill_after_a_checkpoint(model_dir, command):
    """Starts `command`, SIGKILLs it as soon as its first checkpoint is written; the checkpoint
    it was killed at."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    state_file = model_dir / "checkpoints" / "checkpoint"
    deadline = time.time() + 300
    while not state_file.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (model_dir / "summary.json").exists()
    killed_at = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    assert killed_at is not None
    return killed_at


@pytest.mark.slow
def test_a_sigkilled_run_resumes_to_the_uninterrupted_result(reference_run, tmp_path):
    killed_at = _kill_after_a_checkpoint(tmp_path, _command(tmp_path))
    assert not killed_at.endswith("-80")
    elapsed = tf.train.load_checkpoint(killed_at).get_tensor(
        "wall_clock/elapsed_s/.ATTRIBUTES/VARIABLE_VALUE"
    )
    # What a kill in the middle of the next save would have left behind.
    (tmp_path / "checkpoints" / "ckpt-40_temp").mkdir()
    (tmp_path / "checkpoints" / "ckpt-40_temp" / "part-00000-of-00001.index").write_bytes(b"")

    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resumed from {killed_at}" in result.stderr
    _assert_same_run(_summary(tmp_path), reference_run)
    assert not (tmp_path / "checkpoints" / "ckpt-40_temp").exists()
    assert _summary(tmp_path)["wall_time_s"] > elapsed  # the killed session's time counts


@pytest.mark.slow
def test_a_sigkilled_language_model_run_resumes_to_the_uninterrupted_result(tmp_path):
    # Stateful LSTMs on truncated-BPTT streams: checkpoints are taken at epoch ends and every
    # epoch restarts its streams from zero states, so the resumed run is the same run. 3 epochs
    # of 10 steps (2 x 32 units on WordNet's glosses); the kill lands after epoch 1 or 2.
    bindings = ["tfgrow.train.epochs=3"]
    reference = _run(tmp_path / "reference", bindings, experiment=LANGUAGE_MODEL)
    assert reference.returncode == 0, reference.stderr[-3000:]
    model_dir = tmp_path / "killed"
    killed_at = _kill_after_a_checkpoint(model_dir, _command(model_dir, bindings, LANGUAGE_MODEL))
    assert not killed_at.endswith("-30")
    result = _run(model_dir, bindings, experiment=LANGUAGE_MODEL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Resumed from {killed_at}" in result.stderr
    resumed, uninterrupted = _summary(model_dir), _summary(tmp_path / "reference")
    for key in (*COMPARED, "eval_loss", "eval_perplexity", "test_loss", "test_perplexity"):
        assert resumed[key] == uninterrupted[key], key


@pytest.mark.slow
def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
    # A step schedule whose second half multiplies the learning rate by 1e35: epoch 1 trains
    # and checkpoints (step 10), epoch 2 blows up.
    bindings = [
        "tfgrow.train.epochs=2",
        "tfgrow.train.schedule='step'",
        "tfgrow.learning_rate_schedule.boundaries=(0.5,)",
        "tfgrow.learning_rate_schedule.decay=1e35",
    ]
    result = _run(tmp_path, bindings)
    assert result.returncode == 1
    assert "NonFiniteLossError: Non-finite training loss at step 1" in result.stderr
    last_good = str(tmp_path / "checkpoints" / "ckpt-10")
    assert f"the last good checkpoint is {last_good}" in result.stderr, result.stderr[-3000:]
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints")) == last_good
    assert not (tmp_path / "summary.json").exists()
    assert "Traceback" not in result.stderr


def test_a_corrupt_checkpoint_names_the_file_and_how_to_fall_back(tmp_path):
    network, trainer = network_and_trainer()
    checkpoints = RunCheckpoints(make_checkpoint(network, trainer), str(tmp_path))
    batch = (tf.random.normal([4, 8, 8, 1]), tf.constant([0, 1, 2, 0]))
    for _ in range(2):
        trainer.train_step(batch)
        checkpoints.save(trainer.read("step"))
    saved_kernel = network.source.get_layer("stem_conv").kernel.numpy()  # at step 2
    previous, latest = str(tmp_path / "ckpt-1"), str(tmp_path / "ckpt-2")
    data_file = latest + ".data-00000-of-00001"
    size = os.path.getsize(data_file)
    with open(data_file, "r+b") as f:  # a disk fault or a copy cut short
        f.truncate(size // 2)

    network, trainer = network_and_trainer()
    with pytest.raises(CheckpointError) as error:
        RunCheckpoints(make_checkpoint(network, trainer), str(tmp_path)).restore()
    message = str(error.value)
    assert f"Could not restore the checkpoint {latest}" in message
    assert f"previous checkpoint ({previous})" in message
    assert "--gin_bindings='tfgrow.RunCheckpoints.fall_back=True'" in message

    network, trainer = network_and_trainer()
    restored = RunCheckpoints(
        make_checkpoint(network, trainer), str(tmp_path), fall_back=True
    ).restore()
    assert restored == previous and trainer.read("step") == 1
    assert not np.array_equal(network.source.get_layer("stem_conv").kernel.numpy(), saved_kernel)


def test_a_missing_only_checkpoint_says_to_start_over(tmp_path):
    network, trainer = network_and_trainer()
    checkpoints = RunCheckpoints(make_checkpoint(network, trainer), str(tmp_path))
    path = checkpoints.save(0)
    os.remove(path + ".index")
    with pytest.raises(CheckpointError, match=f"delete {tmp_path} to start the run over"):
        RunCheckpoints(make_checkpoint(network, trainer), str(tmp_path)).restore()
