"""A run directory records one run: a rerun with other settings stops before touching it, an
explicit opt-in continues, neutral settings may change, an unreadable checkpoint state file is an
error, a kill's temporary checkpoint folders are removed, and wall time adds up over resumes."""

import json
import os
import shutil
import time

import gin
import pytest
import tensorflow as tf

from tests.fixtures.processes import REPO, launch
from tests.fixtures.runs import network_and_trainer
from tfgrow import config as config_lib
from tfgrow.train import loop
from tfgrow.train.checkpoint import CheckpointError, RunCheckpoints, WallClock, make_checkpoint
from tfgrow.train.run_directory import RECORD_FILE, RunDirectory, RunDirectoryError

EXPERIMENT = "configs/experiments/fashion_mnist_resnet20_grow.gin"
# Two steps of 32 examples and one evaluation batch: the smallest run that checkpoints.
TINY = [
    "tfgrow.train.max_train_examples=64",
    "tfgrow.train.max_eval_examples=32",
    "tfgrow.train.log_every_steps=1",
]
KEPT = ("summary.json", "operative_config.gin", RECORD_FILE, "checkpoints/checkpoint")


def _train(model_dir, bindings=()):
    """tfgrow.train through gin, in this process, as the launcher calls it."""
    gin.clear_config()
    try:
        files = [os.path.join(REPO, EXPERIMENT), os.path.join(REPO, "configs/tiny.gin")]
        config_lib.parse(files, [*TINY, *bindings], search_path=REPO)
        return loop.train(model_dir=str(model_dir))
    finally:
        gin.clear_config()


def _contents(model_dir):
    return {name: (model_dir / name).read_bytes() for name in KEPT}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("run")
    summary = _train(model_dir)
    assert summary["steps"] == 2
    return model_dir


def _copy(run, tmp_path):
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


@pytest.mark.parametrize(
    "binding, named",
    [
        ("tfgrow.train.seed=1", "tfgrow.train.seed was 0, now 1"),
        ("tfgrow.train.method='full'", "tfgrow.train.method was 'grow', now 'full'"),
        ("BUDGET_TARGET=0.5", "tfgrow.Budget.target was 0.3, now 0.5"),
        ("tfgrow.train.epochs=2", "tfgrow.train.epochs was 1, now 2"),
        ("tfgrow.train.global_batch_size=16", "tfgrow.train.global_batch_size was 32, now 16"),
        # A MorphNet run into a growing run's directory: stopped before MorphNet starts.
        ("tfgrow.train.method='width_multiplier'", "was 'grow', now 'width_multiplier'"),
    ],
    ids=["seed", "method", "budget", "epochs", "batch_size", "morphnet"],
)
def test_a_rerun_with_other_settings_stops_and_leaves_the_run_untouched(
    finished_run, binding, named
):
    before = _contents(finished_run)
    with pytest.raises(RunDirectoryError) as error:
        _train(finished_run, [binding])
    message = str(error.value)
    assert f"The run directory {finished_run} holds a run with other settings: " in message
    assert named in message
    assert "choose a new --model_dir" in message
    assert "--gin_bindings='tfgrow.RunDirectory.continue_with_changes=True'" in message
    assert _contents(finished_run) == before


def test_the_launcher_refuses_with_exit_status_2_and_no_traceback(finished_run):
    before = _contents(finished_run)
    bindings = [*TINY, "tfgrow.train.learning_rate=0.2"]
    result = launch(finished_run, EXPERIMENT, "configs/tiny.gin", bindings=bindings)
    assert result.returncode == 2, result.stderr[-3000:]  # a refused input
    assert "RunDirectoryError: The run directory" in result.stderr
    assert "tfgrow.train.learning_rate was 0.1, now 0.2" in result.stderr
    assert "Traceback" not in result.stderr
    assert _contents(finished_run) == before


def test_the_opt_in_continues_and_records_the_change(finished_run, tmp_path):
    model_dir = _copy(finished_run, tmp_path)
    summary = _train(
        model_dir, ["tfgrow.train.seed=1", "tfgrow.RunDirectory.continue_with_changes=True"]
    )
    assert summary["steps"] == 2  # resumed at its end: nothing retrained
    record = json.loads((model_dir / RECORD_FILE).read_text())
    assert record["settings"]["tfgrow.train.seed"] == "1"
    assert record["history"] == [{"changed": {"tfgrow.train.seed": ["0", "1"]}}]


def test_neutral_settings_may_change_and_the_same_settings_resume(finished_run, tmp_path):
    model_dir = _copy(finished_run, tmp_path)
    summary = _train(model_dir, ["tfgrow.train.log_every_steps=7"])
    assert summary["steps"] == 2
    record = json.loads((model_dir / RECORD_FILE).read_text())
    assert record["history"] == []


def test_a_record_without_a_result_is_replaced(tmp_path):
    # A run that stopped before its first checkpoint holds nothing to protect.
    (tmp_path / RECORD_FILE).write_text(json.dumps({"settings": {"tfgrow.train.seed": "5"}}))
    summary = _train(tmp_path, ["tfgrow.train.max_train_examples=32"])
    assert summary["steps"] == 1
    record = json.loads((tmp_path / RECORD_FILE).read_text())
    assert record["settings"]["tfgrow.train.seed"] == "0"


def test_a_result_without_a_record_stops(finished_run, tmp_path):
    model_dir = _copy(finished_run, tmp_path)
    os.remove(model_dir / RECORD_FILE)  # as an earlier tfgrow left it
    with pytest.raises(RunDirectoryError, match="holds a run without a record of its settings"):
        _train(model_dir)


def test_a_multi_worker_process_that_is_not_the_chief_checks_the_chiefs_record(finished_run):
    # Such a process writes under model_dir/workers/ but resumes the chief's checkpoints.
    before = _contents(finished_run)
    worker_dir = finished_run / "workers" / "worker_1"
    arguments = {"model_dir": str(finished_run), "seed": 3}
    with pytest.raises(RunDirectoryError, match="tfgrow.train.seed was 0, now 3"):
        RunDirectory(str(finished_run), str(worker_dir)).claim(arguments)
    worker = RunDirectory(str(finished_run), str(worker_dir), continue_with_changes=True)
    worker.claim(arguments)
    worker.record()  # the chief's record is the run's: a worker writes none
    assert _contents(finished_run) == before and not worker_dir.exists()


def _saved_checkpoints(directory, clock=None):
    network, trainer = network_and_trainer()
    checkpoints = RunCheckpoints(make_checkpoint(network, trainer), str(directory), clock=clock)
    checkpoints.save(1)
    checkpoints.save(2)
    return checkpoints


@pytest.mark.parametrize("fault", ["truncated", "garbage", "deleted"])
def test_an_unreadable_checkpoint_state_file_is_an_error_not_a_restart(tmp_path, fault):
    _saved_checkpoints(tmp_path).save(10)  # the newest by number, not by name: ckpt-10
    state_file = tmp_path / "checkpoint"
    if fault == "truncated":
        state_file.write_text("")
    elif fault == "garbage":
        state_file.write_bytes(b"\x00\x17 not a checkpoint state {")
    else:
        os.remove(state_file)
    network, trainer = network_and_trainer()
    with pytest.raises(CheckpointError) as error:
        RunCheckpoints(make_checkpoint(network, trainer), str(tmp_path))
    message = str(error.value)
    assert "restarting from step 0 would overwrite" in message
    assert f'model_checkpoint_path: "ckpt-10" into {state_file}' in message


def test_temporary_folders_left_by_a_kill_are_removed_on_restart(tmp_path):
    _saved_checkpoints(tmp_path)
    kept = sorted(os.listdir(tmp_path))
    # What a kill during the save of step 3 leaves: the shard folder and a state-file temp.
    (tmp_path / "ckpt-3_temp").mkdir()
    (tmp_path / "ckpt-3_temp" / "part-00000-of-00001.index").write_bytes(b"half")
    (tmp_path / "checkpoint.tmp0123abcd").write_text("half")

    network, trainer = network_and_trainer()
    checkpoints = RunCheckpoints(make_checkpoint(network, trainer), str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == kept
    assert checkpoints.restore() == str(tmp_path / "ckpt-2")


def test_wall_time_adds_up_over_resumes(tmp_path):
    clock = WallClock()
    time.sleep(0.3)
    _saved_checkpoints(tmp_path, clock)  # stamps about 0.3 s at each save
    saved = tf.train.load_checkpoint(str(tmp_path / "ckpt-2"))
    elapsed = saved.get_tensor("wall_clock/elapsed_s/.ATTRIBUTES/VARIABLE_VALUE")
    assert elapsed >= 0.3

    resumed = WallClock()
    network, trainer = network_and_trainer()
    RunCheckpoints(make_checkpoint(network, trainer), str(tmp_path), clock=resumed).restore()
    # The resumed session starts from the saved time, not from zero.
    assert elapsed <= resumed.seconds() < elapsed + 5.0


def test_a_partial_setting_is_recorded_by_its_function_and_arguments():
    import functools

    from tfgrow import models
    from tfgrow.train.run_directory import canonical

    partial = functools.partial(models.lstm_language_model, batch_size=20, units=8)
    text = canonical(partial)
    assert text == "@tfgrow.models.lstm_lm.lstm_language_model(batch_size=20, units=8)"
    assert canonical(functools.partial(models.lstm_language_model, batch_size=20, units=9)) != text
