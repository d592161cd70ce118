"""A language-model run through `tfgrow.train`: states reset at each epoch start and before each
evaluation, perplexity of the validation and test splits, one replica only. (Every LM config's
tiny launcher run is in tests/launchers/test_train.py.)"""

import math

import numpy as np
import pytest

from tests.fixtures.processes import launch, run_module
from tfgrow.growing import grown_model
from tfgrow.models import lstm_language_model
from tfgrow.plots.events import read_scalars
from tfgrow.train.loop import train

BATCH = 2


def _small_language_model(input_shape, num_classes, growing=True, batch_size=None):
    """`lstm_language_model` at 2 x 8 units, grown (a named function: the run records it); a
    wide initialisation, so that a carried state changes the losses."""

    def builder(input_shape, num_classes, batch_size):
        return lstm_language_model(
            input_shape,
            num_classes,
            batch_size=batch_size,
            units=8,
            embedding_size=8,
            init_scale=1.0,
        )

    return grown_model(
        input_shape, num_classes, growing=growing, builder=builder, batch_size=batch_size
    )


@pytest.fixture
def ptb_dir(tmp_path):
    """PTB-format files: 1 training batch of 2 x 35 tokens; validation and test identical."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(20)]

    def lines(num_lines):
        return "".join(" ".join(rng.choice(words, 9)) + "\n" for _ in range(num_lines))

    (tmp_path / "ptb.train.txt").write_text(lines(8))  # 80 tokens with <eos>: 1 batch
    heldout = lines(15)  # 150 tokens: 2 batches
    (tmp_path / "ptb.valid.txt").write_text(heldout)
    (tmp_path / "ptb.test.txt").write_text(heldout)
    return tmp_path


def test_states_restart_each_epoch_and_evaluation_and_perplexity_is_reported(ptb_dir, tmp_path):
    summary = train(
        model_dir=str(tmp_path / "run"),
        model_fn=_small_language_model,
        dataset="ptb",
        data_dir=str(ptb_dir),
        method="full",
        epochs=2,
        global_batch_size=BATCH,
        learning_rate=1e-9,  # weights all but fixed: losses differ only by the state carried in
        schedule="constant",
        momentum=0.0,
        weight_decay=0.0,
        log_every_steps=1,
        step_timing_steps=0,
    )
    assert summary["steps"] == 2  # one batch per epoch
    # Test and validation hold the same text: equal losses only if each evaluation starts from
    # a zero state (the test split is evaluated right after the validation split).
    assert summary["test_loss"] == pytest.approx(summary["eval_loss"], rel=1e-6)
    assert summary["eval_perplexity"] == pytest.approx(math.exp(summary["eval_loss"]))
    assert summary["test_perplexity"] == pytest.approx(math.exp(summary["test_loss"]))
    # Epoch 2's only batch is epoch 1's: the same loss only if training restarts from zero
    # (else it would start from the state the validation split left).
    steps, losses = read_scalars(str(tmp_path / "run" / "train"))["train/loss"]
    assert list(steps) == [1, 2]
    assert losses[1] == pytest.approx(losses[0], rel=1e-6)


@pytest.mark.slow
def test_a_grown_language_model_run_exports_through_the_launcher(tmp_path):
    # The export rebuilds the run's network for its batch size (stateful LSTMs) and checks its
    # counts against summary.json.
    config = "configs/experiments/wordnet_glosses_lstm_grow.gin"
    trained = launch(tmp_path / "run", config, "configs/tiny.gin")
    assert trained.returncode == 0, trained.stderr[-3000:]
    exported = run_module(
        "launchers.export", f"--model_dir={tmp_path / 'run'}", f"--export_dir={tmp_path / 'out'}"
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (tmp_path / "out" / "saved_model.pb").exists()


def test_a_language_model_on_two_replicas_is_refused(tmp_path):
    result = launch(
        tmp_path / "run",
        "configs/experiments/wordnet_glosses_lstm_full.gin",
        "configs/tiny.gin",
        bindings=["tfgrow.make_strategy.name='mirrored'", "tfgrow.make_strategy.num_cpu_devices=2"],
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Expected one replica" in result.stderr and "2 replicas" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
