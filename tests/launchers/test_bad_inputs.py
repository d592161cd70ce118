"""Every class of bad input the launchers refuse: exit status 2, a message that says what was
received and how to fix it, no traceback, and nothing written. Most run the launcher's main in
this process (one TensorFlow import); a few run it as a process, as a user does."""

import os
import subprocess
import sys
import time

import pytest
from absl import flags

from benchmarks.bad_inputs import captured_output, ctrl_c_raises
from tests.fixtures.processes import REPO
from tfgrow import cli

EXPERIMENT = "configs/experiments/fashion_mnist_resnet20_grow.gin"
MORPHNET = "configs/experiments/fashion_mnist_resnet20_morphnet_flops.gin"
PTB = "configs/experiments/ptb_lstm_grow.gin"
GLOSSES = "configs/experiments/wordnet_glosses_lstm_grow.gin"  # offline: Debian's wordnet-base
TINY = "configs/tiny.gin"
LAUNCHER_FLAGS = ("gin_file", "gin_bindings", "model_dir", "tpu")


@pytest.fixture(scope="module")
def train_main():
    """launchers.train's main; its flags are removed afterwards (launchers.export defines the
    same names, and another test module may import it in this process)."""
    os.chdir(REPO)
    from launchers import train

    yield train.main
    for name in LAUNCHER_FLAGS:
        if name in flags.FLAGS:
            delattr(flags.FLAGS, name)
    sys.modules.pop("launchers.train", None)


def launch(train_main, tmp_path, *arguments, model_dir=None):
    """(exit status, console output, files under tmp_path) of one in-process launcher run."""
    model_dir = model_dir or str(tmp_path / "run")
    argv = ["train", f"--model_dir={model_dir}", *arguments]
    before = set(os.listdir(tmp_path))
    with captured_output() as output:
        status = cli.run_in_process(train_main, argv, output_flag="model_dir")
    return status, output.getvalue(), set(os.listdir(tmp_path)) - before


def bindings(*texts, files=(EXPERIMENT, TINY)):
    return [f"--gin_file={f}" for f in files] + [f"--gin_bindings={t}" for t in texts]


REFUSED = [
    # (class, launcher arguments, words the message must hold)
    ("range", bindings("tfgrow.train.epochs=0"), ["tfgrow.train.epochs", "Received: epochs=0"]),
    ("type", bindings("tfgrow.train.learning_rate='0.1'"), ["finite number", "'0.1' (str)"]),
    ("type", bindings("tfgrow.train.jit_compile='yes'"), ["True or False", "'yes'"]),
    ("range", bindings("tfgrow.train.momentum=1.5"), ["momentum", "[0, 0.999]"]),
    ("range", bindings("tfgrow.train.seed=-1"), ["seed", "Received: seed=-1"]),
    ("range", bindings("tfgrow.train.channel_multiple=0"), ["channel_multiple", "[1, 1024]"]),
    ("range", bindings("tfgrow.train.max_eval_examples=-5"), ["max_eval_examples", "-5"]),
    ("range", bindings("tfgrow.train.final_temperature=-200"), ["> 0", "final_temperature=200.0"]),
    ("range", bindings("tfgrow.train.gradient_clip_norm=0"), ["gradient_clip_norm", "> 0"]),
    (
        "choice",
        bindings("tfgrow.train.gradient_clip_norm=5.0", files=(MORPHNET, TINY)),
        ["gradient_clip_norm=5.0", "method='morphnet'"],
    ),
    ("choice", bindings("tfgrow.train.schedule='cosin'"), ["Did you mean 'cosine'?"]),
    ("choice", bindings("tfgrow.train.method='grwo'"), ["Did you mean 'grow'?"]),
    ("budget", bindings("tfgrow.Budget.target=1.5"), ["(0, 1]", "target=1.5"]),
    ("budget", bindings("tfgrow.Budget.target='0.3'"), ["tfgrow.Budget.target", "'0.3' (str)"]),
    ("budget", bindings("tfgrow.Budget.metric='param'"), ["Did you mean 'params'?"]),
    ("strategy", bindings("tfgrow.make_strategy.name='gpu'"), ["name='gpu'"]),
    ("strategy", bindings("tfgrow.make_strategy.num_cpu_devices=0"), ["num_cpu_devices=0"]),
    ("strategy", bindings() + ["--tpu=no-such-tpu"], ["--tpu='no-such-tpu'", "gcloud"]),
    ("split", bindings("tfgrow.train.max_train_examples=10"), ["max_train_examples=10", "batch"]),
    ("dataset", bindings("tfgrow.train.dataset='cifar_10'"), ["Did you mean 'cifar10'?"]),
    ("dataset", bindings(files=(PTB,)), ["ptb.train.txt", "tfgrow.train.data_dir"]),
    (
        "dataset",
        bindings(f"tfgrow.train.data_dir='{REPO}'", files=(PTB,)),
        [os.path.join(REPO, "ptb.valid.txt"), "simple-examples"],
    ),
    ("path", bindings("tfgrow.train.data_dir='/nonexistent/tfds'"), ["data_dir", "not found"]),
    (
        "text",
        bindings("tfgrow.data.TextStreams.num_steps=0", files=(GLOSSES, TINY)),
        ["tfgrow.data.TextStreams.num_steps", "num_steps=0", "integer >= 1"],
    ),
    (
        "text",
        bindings("tfgrow.data.TextStreams.num_steps='35'", files=(GLOSSES, TINY)),
        ["tfgrow.data.TextStreams.num_steps", "num_steps='35'"],
    ),
    (
        "text",
        bindings("tfgrow.train.max_train_examples=10", files=(GLOSSES, TINY)),
        ["max_train_examples=10", "global_batch_size=32"],
    ),
    # A validation split of no whole batch evaluated to loss 0, perplexity 1 (the streams of a
    # fixed batch drop the partial one).
    (
        "text",
        bindings("tfgrow.train.max_eval_examples=16", files=(GLOSSES, TINY)),
        ["validation split", "max_eval_examples=16", "global_batch_size=32"],
    ),
    # An image model on a text dataset, and a language model on an image dataset.
    (
        "text",
        bindings(
            "tfgrow.grown_model.builder=@tfgrow.models.keras_resnet_cifar", files=(GLOSSES, TINY)
        ),
        ["keras_resnet_cifar", "batch_size", "configs/models/lstm_lm_small.gin"],
    ),
    (
        "text",
        bindings(
            "tfgrow.train.model_fn=@tfgrow.grown_model",
            "tfgrow.grown_model.builder=@tfgrow.models.lstm_language_model",
        ),
        ["images of shape (28, 28, 1)", "grown_model", "text dataset"],
    ),
    # The model's fixed batch is the run's global batch size: it has no binding of its own.
    (
        "gin",
        bindings("tfgrow.models.lstm_language_model.batch_size=8", files=(GLOSSES, TINY)),
        ["denylisted kwarg 'batch_size'"],
    ),
    ("builder", bindings("tfgrow.train.model_fn=3"), ["model builder function", "3 (int)"]),
    (
        "builder",
        bindings("tfgrow.train.model_fn=@tfgrow.models.keras_resnet_cifar()"),
        ["without '()'", "input_shape"],
    ),
    (
        "builder",
        bindings("tfgrow.train.model_fn=@tfgrow.models.keras_resnet_cifar"),
        ["accept (input_shape, num_classes, growing=...)"],
    ),
    (
        "builder",
        bindings(
            "tfgrow.train.model_fn=@tfgrow.grown_model",
            "tfgrow.grown_model.builder=@tfgrow.models.keras_resnet_cifar",
            files=(MORPHNET, TINY),
        ),
        ["Keras functional model", "GrowingModel"],
    ),
    # A builder's own refusal is quoted whole, with a fix about that setting (not the dataset).
    (
        "builder",
        bindings("tfgrow.models.keras_resnet_cifar.depth=21"),
        ["from its gin settings", "Received: depth=21", "correct that setting"],
    ),
    ("gin", bindings("tfgrow.train.epoch=3"), ["did you mean tfgrow.train.epochs"]),
    ("gin", bindings("tfgrow.Budget.target=%BUDGT_TARGET"), ["BUDGT_TARGET"]),
    ("gin", bindings("tfgrow.train.epochs=(3"), ["brackets closed"]),
    ("gin", ["--gin_file=nope.gin"], ["--gin_file=nope.gin", "not found"]),
    ("gin", ["--gin_file=configs/base.gin"], ["tfgrow.train.model_fn", "experiment file"]),
]


@pytest.mark.parametrize(
    "arguments, words", [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED]
)
def test_a_bad_setting_is_refused_with_a_message_and_nothing_written(
    train_main, tmp_path, arguments, words
):
    status, output, created = launch(train_main, tmp_path, *arguments)
    assert status == cli.EXIT_REFUSED, output
    message = [line for line in output.splitlines() if line.startswith("tfgrow: error:")]
    assert len(message) == 1, output
    for word in words:
        assert word in message[0], message[0]
    assert "Expected" in message[0] or "Fix" in message[0] or "fix" in message[0]
    assert "Traceback" not in output
    assert created == set(), created


@pytest.mark.parametrize(
    "model_dir, words",
    [
        ("{tmp}/notes.txt", ["existing file"]),
        ("{tmp}/notes.txt/run", ["is a file"]),
        ("/proc/tfgrow_run", ["writable"]),
        ("~/tfgrow_run", ["'~'", "$HOME"]),
    ],
    ids=["file", "under_a_file", "not_writable", "tilde"],
)
def test_a_model_dir_that_cannot_hold_a_run_is_refused(train_main, tmp_path, model_dir, words):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    status, output, created = launch(
        train_main, tmp_path, *bindings(), model_dir=model_dir.format(tmp=tmp_path)
    )
    assert status == cli.EXIT_REFUSED, output
    for word in words:
        assert word in output
    assert notes.read_text() == "my notes\n" and created == set()
    assert not os.path.exists(os.path.expanduser("~/tfgrow_run"))


@pytest.mark.slow
def test_ctrl_c_stops_with_status_130_and_a_resume_hint(train_main, tmp_path):
    import _thread
    import threading

    # Ctrl-C one second after training starts (its `train` log directory appears): during the
    # first steps of a 200-step run however fast or loaded the machine (a fixed 20 s timer
    # landed before training under load, or after a fast run's end).
    started = tmp_path / "run" / "train"
    stop = threading.Event()

    def interrupt_once_training():
        deadline = time.monotonic() + 600.0
        while not started.exists() and time.monotonic() < deadline and not stop.is_set():
            time.sleep(0.1)
        if not stop.wait(1.0):
            _thread.interrupt_main()

    watcher = threading.Thread(target=interrupt_once_training, daemon=True)
    with ctrl_c_raises():
        watcher.start()
        status, output, _ = launch(train_main, tmp_path, *bindings("tfgrow.train.epochs=20"))
    stop.set()
    watcher.join()
    assert status == cli.EXIT_INTERRUPTED, output
    assert "Interrupted (Ctrl-C)" in output and "resume" in output
    assert "Traceback" not in output
    assert not (tmp_path / "run" / "summary.json").exists()


@pytest.mark.slow
def test_a_refused_input_in_a_real_process_prints_one_line_and_no_start_up_noise(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    command = [sys.executable, "-m", "launchers.train", f"--model_dir={tmp_path}/run"]
    command += bindings("tfgrow.train.epochs=0")
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == cli.EXIT_REFUSED
    assert "tfgrow: error: Expected tfgrow.train.epochs" in result.stderr
    for noise in ("Traceback", "oneDNN", "absl::InitializeLog", "cuInit", "cpu_feature_guard"):
        assert noise not in result.stderr + result.stdout, result.stderr
    assert os.listdir(tmp_path) == []
