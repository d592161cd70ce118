"""The bad inputs `benchmarks/bad_inputs.py` tries: launcher flags, gin bindings, paths, builders,
strategies, interrupts, and misuse of the Python API.

A case is a `Case`: its class (the column a reader scans), a label, and what to run. Launcher
cases give the launcher's flags; `{root}` stands for the case's fresh temporary directory, and
`--model_dir={root}/run` is added unless the flags name one. `setup(root)` prepares files first
(an existing file where a directory is expected, say). API cases give a function of `root`.
"""

import dataclasses
import os

EXPERIMENT = "configs/experiments/fashion_mnist_resnet20_grow.gin"
TINY = "configs/tiny.gin"
MORPHNET = "configs/experiments/fashion_mnist_resnet20_morphnet_flops.gin"
MIRRORED = "configs/modes/mirrored_cpu2.gin"
XLA = "configs/modes/xla.gin"


@dataclasses.dataclass
class Case:
    """One bad input.

    Args:
        group: the class of input (e.g. "range", "path", "gin").
        label: what is wrong, as a user would write it.
        launcher: "train", "export" or "api".
        flags: the launcher's flags ({root} is the case directory).
        setup: prepares the case directory before the run (None: nothing).
        api: for "api" cases, a function of the case directory that raises.
        subprocess: run the launcher as a separate process (exit status, stderr as a user sees
            it); otherwise in this process.
        expect_writes: the run is allowed to write (an error found during training).
        interrupt_after: send Ctrl-C after this many seconds.
        add_model_dir: add `--model_dir={root}/run` when the flags name none.
    """

    group: str
    label: str
    launcher: str = "train"
    flags: tuple = ()
    setup: object = None
    api: object = None
    subprocess: bool = False
    expect_writes: bool = False
    interrupt_after: float = None
    add_model_dir: bool = True


def binding(group, text, files=(EXPERIMENT, TINY), label=None, **kwargs):
    """A train case of one or more gin bindings on the tiny main experiment."""
    texts = text if isinstance(text, tuple) else (text,)
    flags = tuple(f"--gin_file={f}" for f in files) + tuple(f"--gin_bindings={t}" for t in texts)
    return Case(group, label or " ".join(texts), flags=flags, **kwargs)


def train_flags(group, label, *extra, files=(EXPERIMENT, TINY), **kwargs):
    """A train case with extra launcher flags."""
    return Case(group, label, flags=tuple(f"--gin_file={f}" for f in files) + extra, **kwargs)


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _file_at_run(root):
    _write(os.path.join(root, "run"), "my notes\n")


def _bad_gin(root):
    _write(os.path.join(root, "bad.gin"), "include 'configs/base.gin'\ntfgrow.train.epochs = = 3\n")


def _empty_run(root):
    os.makedirs(os.path.join(root, "run"))


def _cases_of_training():
    no_mock = "tfgrow.train.mock_data_if_missing=False"
    cases = [
        binding("range", "tfgrow.train.epochs=0"),
        binding("range", "tfgrow.train.epochs=-3"),
        binding("type", "tfgrow.train.epochs='ten'"),
        binding("type", "tfgrow.train.epochs=2.5"),
        binding("range", "tfgrow.train.global_batch_size=0"),
        binding("range", "tfgrow.train.global_batch_size=-32"),
        binding("type", "tfgrow.train.global_batch_size=32.0"),
        binding("range", "tfgrow.train.learning_rate=0"),
        binding("range", "tfgrow.train.learning_rate=-0.1"),
        binding("type", "tfgrow.train.learning_rate='0.1'"),
        binding("range", "tfgrow.train.learning_rate=1e999"),
        binding("range", "tfgrow.train.mask_learning_rate=-1.0"),
        binding("range", "tfgrow.train.momentum=1.5"),
        binding("range", "tfgrow.train.momentum=-0.1"),
        binding("range", "tfgrow.train.mask_momentum=2.0"),
        binding("range", "tfgrow.train.weight_decay=-1e-4"),
        binding("choice", "tfgrow.train.schedule='cosin'"),
        binding("choice", "tfgrow.train.relaxation='gumble'"),
        binding("choice", "tfgrow.train.temperature_mode='globl'"),
        binding("choice", "tfgrow.train.method='grwo'"),
        binding("range", "tfgrow.train.beta0=0"),
        binding("range", "tfgrow.train.final_temperature=-200"),
        binding("range", "tfgrow.train.seed=-1"),
        binding("type", "tfgrow.train.seed='abc'"),
        binding("range", "tfgrow.train.seed=1099511627776"),
        binding("split", "tfgrow.train.max_train_examples=10"),
        binding("range", "tfgrow.train.max_train_examples=0"),
        binding("range", "tfgrow.train.max_eval_examples=-5"),
        binding("range", "tfgrow.train.log_every_steps=0"),
        binding("range", "tfgrow.train.channel_multiple=0"),
        binding("type", "tfgrow.train.channel_multiple=3.5"),
        binding("type", "tfgrow.train.jit_compile='yes'"),
        binding("type", "tfgrow.train.static_capacities=1"),
        binding("range", "tfgrow.train.capacity_sigmas=-1.0"),
        binding("range", "tfgrow.train.capacity_headroom=0"),
        binding("dataset", ("tfgrow.train.dataset='cifar_10'", no_mock)),
        binding("dataset", ("tfgrow.train.dataset='no_such_dataset'", no_mock)),
        binding("type", "tfgrow.train.dataset=3"),
        binding("path", "tfgrow.train.data_dir='/nonexistent/tfds'"),
        binding("path", "tfgrow.train.data_dir='configs/tiny.gin'"),
        binding("builder", "tfgrow.train.model_fn=3"),
        binding("builder", "tfgrow.train.model_fn=@tfgrow.models.keras_resnet_cifar()"),
        binding("builder", "tfgrow.train.model_fn=@tfgrow.models.keras_resnet_cifar"),
        binding(
            "builder",
            (
                "tfgrow.train.model_fn=@tfgrow.grown_model",
                "tfgrow.grown_model.builder=@tfgrow.models.keras_resnet_cifar",
            ),
            files=(MORPHNET, TINY),
        ),
        binding("builder", "tfgrow.models.keras_resnet_cifar.depth=21"),
        binding("builder", "tfgrow.models.keras_resnet_cifar.width_multiplier=0"),
        binding("budget", "tfgrow.Budget.target=0"),
        binding("budget", "tfgrow.Budget.target=1.5"),
        binding("budget", "tfgrow.Budget.target='0.3'"),
        binding("budget", "tfgrow.Budget.metric='param'"),
        binding(
            "budget",
            "tfgrow.Budget.metric='latency'",
            files=("configs/experiments/wordnet_glosses_lstm_grow.gin", TINY),
            label="tfgrow.Budget.metric='latency' on an LSTM language model",
        ),
        binding("budget", "tfgrow.Budget.update_steps=0"),
        binding("budget", "tfgrow.Budget.lambda_channel_base=-1.0"),
        binding("strategy", "tfgrow.make_strategy.name='gpu_cluster'"),
        binding("strategy", "tfgrow.make_strategy.num_cpu_devices=0"),
        binding("strategy", "tfgrow.make_strategy.num_cpu_devices='2'"),
        train_flags("strategy", "--tpu=no-such-tpu", "--tpu=no-such-tpu"),
        train_flags("strategy", "--tpu=local (no TPU here)", "--tpu=local"),
        train_flags(
            "strategy",
            "XLA with 2 mirrored replicas (xla.gin + mirrored_cpu2.gin)",
            files=(EXPERIMENT, TINY, MIRRORED, XLA),
            subprocess=True,
        ),
        binding(
            "split",
            "tfgrow.train.global_batch_size=1",
            files=(EXPERIMENT, TINY, MIRRORED),
            label="tfgrow.train.global_batch_size=1 over 2 replicas",
            subprocess=True,
        ),
        binding("gin", "tfgrow.train.epoch=3"),
        binding("gin", "tfgrow.trian.epochs=3"),
        binding("gin", "tfgrow.Budget.target=%BUDGT_TARGET"),
        binding("gin", "tfgrow.train.epochs=(3"),
        binding("gin", "tfgrow.train.epochs 3"),
        binding("gin", "tfgrow.train.model_fn=@tfgrow.models.resnet"),
        binding("gin", "include 'configs/nope.gin'"),
        train_flags("gin", "--gin_file=nope.gin", files=("nope.gin",)),
        train_flags("gin", "--gin_file=configs (a directory)", files=("configs",)),
        train_flags("gin", "no --gin_file", files=()),
        train_flags(
            "gin", "--gin_file=configs/base.gin (no model or dataset)", files=("configs/base.gin",)
        ),
        train_flags(
            "gin", "gin file with a syntax error", files=("{root}/bad.gin",), setup=_bad_gin
        ),
        Case(
            "flag", "--model_dir without a value", flags=(f"--gin_file={EXPERIMENT}", "--model_dir")
        ),
        Case("flag", "no --model_dir", flags=(f"--gin_file={EXPERIMENT}",), add_model_dir=False),
        Case("flag", "--model_dir=''", flags=(f"--gin_file={EXPERIMENT}", "--model_dir=")),
        train_flags("path", "--model_dir is an existing file", setup=_file_at_run),
        train_flags(
            "path", "--model_dir under a file", "--model_dir={root}/run/sub", setup=_file_at_run
        ),
        train_flags("path", "--model_dir not writable (/proc)", "--model_dir=/proc/tfgrow_run"),
        train_flags(
            "path", "--model_dir='~/runs/x' (not expanded)", "--model_dir=~/tfgrow_bad_input_run"
        ),
        train_flags("flag", "unknown flag --epochs=3", "--epochs=3"),
        train_flags("flag", "stray positional argument", "extra"),
        train_flags("flag", "--gin_bindings without a value", "--gin_bindings"),
        binding("morphnet", "tfgrow.MorphNet.strength=None", files=(MORPHNET, TINY)),
        binding("morphnet", "tfgrow.MorphNet.regularizer='flop'", files=(MORPHNET, TINY)),
        binding("morphnet", "tfgrow.MorphNet.gamma_threshold=0", files=(MORPHNET, TINY)),
        binding("morphnet", "tfgrow.MorphNet.target_fraction=0", files=(MORPHNET, TINY)),
        binding("morphnet", "tfgrow.MorphNet.num_iterations=0", files=(MORPHNET, TINY)),
        binding(
            "run",
            "tfgrow.train.learning_rate=1e30",
            label="tfgrow.train.learning_rate=1e30 (loss turns NaN)",
            expect_writes=True,
        ),
        binding(
            "interrupt",
            "tfgrow.train.epochs=20",
            label="Ctrl-C during training (in process)",
            expect_writes=True,
            interrupt_after=25.0,
        ),
        Case(
            "flag",
            "no --model_dir (as a process)",
            flags=(f"--gin_file={EXPERIMENT}",),
            subprocess=True,
            add_model_dir=False,
        ),
        binding("range", "tfgrow.train.epochs=0", label="epochs=0 (as a process)", subprocess=True),
        Case(
            "interrupt",
            "Ctrl-C during training (SIGINT to the process)",
            flags=(
                f"--gin_file={EXPERIMENT}",
                f"--gin_file={TINY}",
                "--gin_bindings=tfgrow.train.epochs=20",
            ),
            subprocess=True,
            expect_writes=True,
            interrupt_after=40.0,
        ),
    ]
    return cases


def _cases_of_export():
    return [
        Case("export", "no --export_dir", "export", ("--model_dir={root}/run",)),
        Case(
            "export",
            "--model_dir does not exist",
            "export",
            ("--model_dir={root}/run", "--export_dir={root}/out"),
        ),
        Case(
            "export",
            "--model_dir is not a run (empty)",
            "export",
            ("--model_dir={root}/run", "--export_dir={root}/out"),
            setup=_empty_run,
        ),
        Case(
            "export",
            "--model_dir is a file",
            "export",
            ("--model_dir={root}/run", "--export_dir={root}/out"),
            setup=_file_at_run,
        ),
        Case(
            "export",
            "--format=onnx",
            "export",
            ("--model_dir={root}/run", "--export_dir={root}/out", "--format=onnx"),
        ),
    ]


def cases(launcher=None):
    """Every case (or those of one launcher: "train", "export" or "api")."""
    from benchmarks.bad_input_api import api_cases

    everything = _cases_of_training() + _cases_of_export() + api_cases()
    return [case for case in everything if launcher in (None, case.launcher)]
