"""`train`: the gin-configurable root of every tfgrow run (growing, full, MorphNet, baselines).

The launcher parses gin files and calls `train(model_dir=...)`; library code reads no flags.
`train` checks the settings, claims the run directory, and runs the method: the growing ones
("grow", "full", "random") with `tfgrow.train.growing_run.GrowingRun`, MorphNet's with
`tfgrow.morphnet.run`, the plain baselines with `tfgrow.baselines.<method>` (method names:
`tfgrow.train.methods`).
"""

import gin

from tfgrow.baselines import direct_design, l1_pruning, magnitude_pruning, uniform
from tfgrow.masks import RELAXATIONS, TEMPERATURE_MODES
from tfgrow.morphnet import run as morphnet_run
from tfgrow.precision import POLICIES, dtype_policy_scope
from tfgrow.train import strategy as strategy_lib
from tfgrow.train import validation
from tfgrow.train.growing_run import GrowingRun
from tfgrow.train.methods import METHODS, MORPHNET_METHODS, NETWORK_METHODS, PLAIN_BASELINES
from tfgrow.train.progress import describe_run
from tfgrow.train.run_directory import RunDirectory
from tfgrow.train.schedules import SCHEDULES
from tfgrow.train.strategy import make_strategy

# The runner of every method `train` does not run itself, each `(**settings) -> summary`.
RUNNERS = {
    "morphnet": morphnet_run.run,
    "width_multiplier": morphnet_run.run,
    "uniform": uniform.run,
    "direct_design": direct_design.run,
    "l1_pruning": l1_pruning.run,
    "magnitude_pruning": magnitude_pruning.run,
}
# Arguments of `train` the stock-Keras runners (MorphNet, plain baselines) take besides model_fn,
# strategy and the run directory; the growing settings do not apply to them.
PLAIN_RUN_ARGUMENTS = (
    "model_dir",
    "method",
    "dataset",
    "epochs",
    "global_batch_size",
    "learning_rate",
    "schedule",
    "momentum",
    "weight_decay",
    "seed",
    "data_dir",
    "max_train_examples",
    "max_eval_examples",
    "log_every_steps",
    "mock_data_if_missing",
)


@gin.configurable(module="tfgrow", denylist=["model_dir"])
def train(
    model_dir,
    model_fn=gin.REQUIRED,
    dataset=gin.REQUIRED,
    method="grow",
    epochs=10,
    global_batch_size=128,
    learning_rate=0.1,
    schedule="cosine",
    momentum=0.9,
    weight_decay=5e-4,
    gradient_clip_norm=None,
    mask_learning_rate=None,
    mask_momentum=0.9,
    temperature_mode="structure",
    beta0=1.0,
    final_temperature=200.0,
    relaxation="sigmoid",
    seed=0,
    data_dir=None,
    max_train_examples=None,
    max_eval_examples=None,
    log_every_steps=50,
    mock_data_if_missing=False,
    channel_multiple=8,
    jit_compile=False,
    static_capacities=None,
    capacity_sigmas=4.0,
    capacity_headroom=1.0,
    step_timing_steps=5,
    dtype_policy="float32",
    strategy=None,
):
    """Trains one network and writes checkpoints, TensorBoard events and `summary.json`.

    Args:
        model_dir: output directory (from the launcher's --model_dir).
        model_fn: `(input_shape, num_classes, **kwargs) -> model`, e.g. `@tfgrow.grown_model`.
        dataset: tfds name, e.g. "fashion_mnist" or "cifar10", or a text corpus of
            `tfgrow.data.text` ("ptb", "wordnet_glosses": a language model's token streams;
            one replica; the test split's perplexity is reported too).
        method: one of `tfgrow.train.methods.METHODS` (that module says what each runs).
        epochs: training epochs T (also sets gamma = final_temperature ** (1 / T)).
        global_batch_size: examples per step over all replicas.
        learning_rate, schedule: weight learning rate and its schedule (`SCHEDULES`).
        momentum, weight_decay: weight optimiser settings.
        gradient_clip_norm: None (off), or clip the weights' gradients to this global norm
            (Zaremba et al.'s 5 or 10 clip a loss summed over 35 tokens: 5 / 35 or 10 / 35 on
            tfgrow's per-token mean); methods "grow", "full" and "random" only.
        mask_learning_rate, mask_momentum: the logits' base learning rate (None: the
            weights'; same schedule) and momentum.
        temperature_mode, beta0, final_temperature, relaxation: METHOD.md §1.4, §1.2.
        seed: seed of initialisation, data order and mask sampling.
        data_dir, max_train_examples, max_eval_examples: tfds data directory (may be gs://);
            truncate the splits (tiny runs).
        log_every_steps, mock_data_if_missing: logging interval; use `tfds.testing.mock_data`
            if the dataset is missing (smoke runs).
        channel_multiple: compute each group's active channels rounded up to this multiple
            (extra channels carry mask 0; not counted or updated; measured: `masks.active_set`).
        jit_compile: compile the steps with XLA (`configs/modes/xla.gin`); static capacities.
        static_capacities: run every channel group at a capacity from a small ladder, re-chosen
            between epochs (`tfgrow/train/capacity.py`); None follows `jit_compile`.
        capacity_sigmas, capacity_headroom: a capacity holds (mean + sigmas * std of a step's
            count, or last epoch's largest count if larger) * headroom.
        step_timing_steps: steps per round of `summary.json`'s `step_time_*` (0 skips them).
        dtype_policy: the Keras dtype policy of the network: "float32", "mixed_bfloat16" or
            "mixed_float16" (loss-scaled); masks, BN statistics and the loss stay float32.
        strategy: a `tf.distribute.Strategy`; None builds one with `make_strategy()`.

    Returns:
        The summary dict (also written to `model_dir/summary.json`).
    """
    arguments = dict(locals())  # the run's settings, recorded in and compared with model_dir
    validation.check_train_arguments(
        dict(arguments), METHODS, SCHEDULES, RELAXATIONS, TEMPERATURE_MODES
    )
    validation.check_dtype_policy(method, dtype_policy, POLICIES)
    with dtype_policy_scope(dtype_policy):  # layers built inside take the policy
        return _train(arguments, strategy)


def _train(arguments, strategy):
    """`train` after its arguments are checked; returns the summary."""
    model_fn, method = arguments["model_fn"], arguments["method"]
    dataset, data_dir = arguments["dataset"], arguments["data_dir"]
    builder_name = getattr(model_fn, "__name__", "model_fn")
    if method != "magnitude_pruning":  # it builds a tf_keras (Keras 2) model with model_fn
        model_fn = validation.checked_builder(model_fn, growing_network=method in NETWORK_METHODS)
    strategy = strategy or make_strategy()
    num_train = validation.check_dataset_split(
        dataset,
        data_dir,
        arguments["global_batch_size"],
        arguments["max_train_examples"],
        arguments["mock_data_if_missing"],
        strategy,
        arguments["max_eval_examples"],
    )
    model_dir = arguments["model_dir"]
    run_directory = RunDirectory(model_dir, strategy_lib.output_dir(strategy, model_dir))
    run_directory.claim(arguments)  # a directory holding another run stops here, untouched
    settings = dict(arguments, model_fn=model_fn, strategy=strategy)
    if method in MORPHNET_METHODS + PLAIN_BASELINES:
        return _run_stock_keras(settings, run_directory, builder_name, num_train)
    return GrowingRun(settings, run_directory).train()


def _run_stock_keras(settings, run_directory, builder_name, num_train):
    """Hands a MorphNet or plain-baseline run to its runner; returns the summary."""
    if num_train:
        describe_run(
            settings["method"],
            builder_name,
            settings["dataset"],
            settings["epochs"],
            num_train // settings["global_batch_size"],
            settings["global_batch_size"],
            settings["strategy"].num_replicas_in_sync,
        )
    return RUNNERS[settings["method"]](
        model_fn=settings["model_fn"],
        strategy=settings["strategy"],
        run_directory=run_directory,
        **{name: settings[name] for name in PLAIN_RUN_ARGUMENTS},
    )
