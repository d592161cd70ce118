"""Checks of a run's settings before any work: each failure says what was received, what was
expected and how to fix it, and nothing has been written yet.

`check_train_arguments` checks every argument of `tfgrow.train` (types, ranges, choices, paths);
`check_split_sizes` that the training split holds at least one global batch; `checked_builder`
wraps a model builder so that what it returns is checked (type, input shape, classes) the moment
it is built. The launchers turn `InputError` into a one-paragraph message and exit status 2.
"""

import difflib
import math
import numbers
import os
import tempfile

import keras

from tfgrow import data as data_lib
from tfgrow.errors import first_line
from tfgrow.growing.structures import MaskedStructures  # what tfgrow.grow's models are
from tfgrow.train.methods import GROWING_RUN_METHODS


class InputError(ValueError):
    """A setting or input a user can get wrong; the message says how to fix it."""


def _binding(name, example):
    return f'--gin_bindings="{name}={example}"'


def _received(name, value):
    short = name.rsplit(".", 1)[-1]
    return f"Received: {short}={value!r} ({type(value).__name__})"


def check_integer(name, value, minimum=None, maximum=None, example=None):
    """Raises InputError unless `value` is an int (not a bool) within [minimum, maximum]."""
    valid = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if valid and (minimum is None or value >= minimum) and (maximum is None or value <= maximum):
        return
    bounds = _bounds_text(minimum, maximum, "[", "]")
    raise InputError(
        f"Expected {name} to be an integer{bounds}. {_received(name, value)}. "
        f"Fix: set e.g. {_binding(name, example if example is not None else minimum)}."
    )


def check_number(name, value, minimum=None, maximum=None, open_below=False, example=None):
    """Raises InputError unless `value` is a finite real number in range.

    Args:
        name: the setting's gin name, e.g. "tfgrow.train.learning_rate".
        value: what was received.
        minimum, maximum: bounds (None: unbounded); `maximum` is inclusive.
        open_below: the minimum itself is excluded (e.g. rates must be > 0).
        example: a valid value for the message's fix.
    """
    valid = isinstance(value, numbers.Real) and not isinstance(value, bool)
    valid = valid and math.isfinite(value)
    if valid and minimum is not None:
        valid = value > minimum if open_below else value >= minimum
    if valid and maximum is not None:
        valid = value <= maximum
    if valid:
        return
    bounds = _bounds_text(minimum, maximum, "(" if open_below else "[", "]")
    raise InputError(
        f"Expected {name} to be a finite number{bounds}. {_received(name, value)}. "
        f"Fix: set e.g. {_binding(name, example)}."
    )


def _bounds_text(minimum, maximum, low, high):
    if minimum is not None and maximum is not None:
        return f" in {low}{minimum}, {maximum}{high}"
    if minimum is not None:
        return f" {'>' if low == '(' else '>='} {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def check_choice(name, value, choices):
    """Raises InputError unless `value` is one of `choices`; suggests the closest one."""
    if isinstance(value, str) and value in choices:
        return
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise InputError(
        f"Expected {name} to be one of {tuple(choices)}. {_received(name, value)}.{hint} "
        f"Fix: set e.g. {_binding(name, repr(close[0] if close else choices[0]))}."
    )


def check_bool(name, value, allow_none=False):
    """Raises InputError unless `value` is True or False (or None when allowed)."""
    if isinstance(value, bool) or (allow_none and value is None):
        return
    allowed = "True, False or None" if allow_none else "True or False"
    raise InputError(
        f"Expected {name} to be {allowed}. {_received(name, value)}. "
        f"Fix: set e.g. {_binding(name, 'True')} (no quotes)."
    )


def check_output_dir(path, flag="--model_dir"):
    """Raises InputError unless `path` names a directory that exists and is writable, or one
    that can be created. Local paths are probed (a temporary file, removed at once); remote
    paths (gs://) are left to the filesystem.
    """
    if not isinstance(path, str) or not path.strip():
        raise InputError(
            f"Expected {flag} to be a directory path. Received: {path!r}. "
            f"Fix: pass e.g. {flag}=runs/my_run."
        )
    if "://" in path:
        return
    if path.startswith("~"):
        raise InputError(
            f"Expected {flag} without a leading '~' (the shell did not expand it, so a folder "
            f"named '~' would be created). Received: {flag}={path}. Fix: write "
            f"{flag}=$HOME{path[1:]} or a relative path."
        )
    if os.path.exists(path) and not os.path.isdir(path):
        raise InputError(
            f"Expected {flag} to be a directory. Received: {flag}={path}, which is an existing "
            "file. Fix: pass a new directory path, or move the file away."
        )
    existing = os.path.abspath(path)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise InputError(
            f"Expected {flag} to be a directory path. Received: {flag}={path}, but {existing} "
            "is a file, so no directory can be created under it. Fix: choose another path."
        )
    try:
        handle, probe = tempfile.mkstemp(prefix=".tfgrow_write_check_", dir=existing)
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise InputError(
            f"Expected {flag} to be writable. Received: {flag}={path}; writing in {existing} "
            f"failed ({error.strerror or error}). Fix: pass a directory you can write to."
        ) from error


def check_input_dir(name, path):
    """Raises InputError unless `path` is None, remote (gs://) or an existing local directory."""
    if path is None or (isinstance(path, str) and "://" in path):
        return
    if not isinstance(path, str) or not os.path.isdir(path):
        what = "a file" if isinstance(path, str) and os.path.exists(path) else "not found"
        raise InputError(
            f"Expected {name} to be an existing directory (or None for the default). "
            f"Received: {path!r} ({what}). Fix: prepare the data with `tfds build NAME "
            f"--data_dir=DIR` (text corpora: put their files in DIR) and set "
            f"{_binding(name, repr('DIR'))}."
        )


def check_split_sizes(num_train, global_batch_size, num_replicas, dataset, max_train_examples):
    """Raises InputError unless the training split holds at least one global batch and every
    replica gets at least one example of it."""
    if global_batch_size < num_replicas:
        raise InputError(
            f"Expected tfgrow.train.global_batch_size >= the number of replicas "
            f"({num_replicas}), so every replica gets an example. Received: "
            f"global_batch_size={global_batch_size}. Fix: raise the batch size."
        )
    if num_train >= global_batch_size:
        return
    source = (
        f"max_train_examples={max_train_examples}"
        if max_train_examples is not None and max_train_examples < global_batch_size
        else f"{num_train} examples in {dataset!r}"
    )
    raise InputError(
        f"Expected the training split to hold at least one batch of "
        f"global_batch_size={global_batch_size} (the last partial batch is dropped, so no step "
        f"would run). Received: {source}. Fix: lower tfgrow.train.global_batch_size or raise "
        "tfgrow.train.max_train_examples."
    )


def check_train_arguments(arguments, methods, schedules, relaxations, temperature_modes):
    """Checks the arguments of `tfgrow.train` (a dict of its parameters) before any work.

    Args:
        arguments: parameter name -> value, as `tfgrow.train` received them.
        methods, schedules, relaxations, temperature_modes: the valid choices.

    Raises:
        InputError: naming the first invalid argument, what it should be and how to set it.
    """
    name = "tfgrow.train.{}".format
    check_output_dir(arguments["model_dir"])
    check_choice(name("method"), arguments["method"], methods)
    _check_builder(arguments["model_fn"])
    if not isinstance(arguments["dataset"], str) or not arguments["dataset"]:
        raise InputError(
            f"Expected tfgrow.train.dataset to be a dataset name such as 'fashion_mnist' or "
            f"'cifar10'. {_received('dataset', arguments['dataset'])}. Fix: set e.g. "
            f"{_binding(name('dataset'), repr('fashion_mnist'))}."
        )
    for key, example in (("epochs", 12), ("global_batch_size", 128), ("log_every_steps", 50)):
        check_integer(name(key), arguments[key], minimum=1, example=example)
    check_integer(name("channel_multiple"), arguments["channel_multiple"], 1, 1024, example=8)
    check_integer(name("seed"), arguments["seed"], 0, 2**31 - 1, example=0)
    for key in ("max_train_examples", "max_eval_examples"):
        if arguments[key] is not None:
            check_integer(name(key), arguments[key], minimum=1, example=1000)
    for key, example in (("learning_rate", 0.1), ("beta0", 1.0), ("final_temperature", 200.0)):
        check_number(name(key), arguments[key], 0, open_below=True, example=example)
    if arguments["mask_learning_rate"] is not None:
        check_number(name("mask_learning_rate"), arguments["mask_learning_rate"], 0, None, True, 10)
    for key in ("momentum", "mask_momentum"):
        check_number(name(key), arguments[key], 0, 0.999, example=0.9)
    check_number(name("weight_decay"), arguments["weight_decay"], 0, example=5e-4)
    if arguments["gradient_clip_norm"] is not None:
        check_number(name("gradient_clip_norm"), arguments["gradient_clip_norm"], 0, None, True, 5)
    _check_growing_run_settings(arguments)
    check_number(name("capacity_sigmas"), arguments["capacity_sigmas"], 0, example=4.0)
    check_number(name("capacity_headroom"), arguments["capacity_headroom"], 0, None, True, 1.0)
    check_choice(name("schedule"), arguments["schedule"], schedules)
    check_choice(name("relaxation"), arguments["relaxation"], relaxations)
    check_choice(name("temperature_mode"), arguments["temperature_mode"], temperature_modes)
    check_bool(name("mock_data_if_missing"), arguments["mock_data_if_missing"])
    check_bool(name("jit_compile"), arguments["jit_compile"])
    check_bool(name("static_capacities"), arguments["static_capacities"], allow_none=True)
    check_input_dir(name("data_dir"), arguments["data_dir"])


def _check_growing_run_settings(arguments):
    """Refuses settings only the growing trainer has (methods grow, full, random): elsewhere
    gradient clipping would be ignored and the epoch-decay schedule fail after set-up."""
    method = arguments["method"]
    unsupported = []
    if arguments["gradient_clip_norm"] is not None:
        unsupported.append(f"gradient_clip_norm={arguments['gradient_clip_norm']!r}")
    if arguments["schedule"] == "epoch_decay":
        unsupported.append("schedule='epoch_decay'")
    if unsupported and method not in GROWING_RUN_METHODS:
        raise InputError(
            f"Expected a method in {GROWING_RUN_METHODS} for tfgrow.train."
            f"{' and '.join(unsupported)} (settings of the growing trainer only). Received: "
            f"method={method!r}. Fix: drop those bindings (schedule 'step' with one boundary per "
            "epoch also decays per epoch), or train with one of those methods."
        )


def check_dtype_policy(method, dtype_policy, policies):
    """Raises InputError unless `dtype_policy` is one of `policies` that `method` can train with.

    The magnitude-pruning baseline trains a tf_keras (Keras 2) model, which Keras 3's dtype
    policy does not reach: it stays float32.
    """
    check_choice("tfgrow.train.dtype_policy", dtype_policy, policies)
    if method == "magnitude_pruning" and dtype_policy != "float32":
        raise InputError(
            "Expected tfgrow.train.dtype_policy = 'float32' for the magnitude_pruning baseline "
            f"(it trains a tf_keras model, which Keras 3's dtype policy does not reach). "
            f"Received: dtype_policy={dtype_policy!r}. Fix: drop the dtype_policy binding for "
            "this baseline."
        )


def _check_builder(model_fn):
    if callable(model_fn) and not isinstance(model_fn, type):
        return
    raise InputError(
        "Expected tfgrow.train.model_fn to be a model builder function, referenced with '@' and "
        f"without '()'. {_received('model_fn', model_fn)}. Fix: set e.g. "
        f"{_binding('tfgrow.train.model_fn', '@tfgrow.grown_model')} with "
        f"{_binding('tfgrow.grown_model.builder', '@tfgrow.models.keras_resnet_cifar')}."
    )


def checked_builder(model_fn, growing_network):
    """Wraps a model builder so that what it returns is checked when it is built.

    Args:
        model_fn: the builder, `(input_shape, num_classes, **kwargs) -> model`.
        growing_network: True when the method trains a growing network ("grow", "full":
            `tfgrow.grow`'s `GrowingModel`); False when it trains a plain Keras functional model
            (MorphNet methods).

    Returns:
        A builder with the same arguments that raises InputError when the model is not of the
        expected kind, was built for another input shape or has another number of outputs.
    """
    expected = MaskedStructures if growing_network else keras.Model
    builder = getattr(model_fn, "__name__", repr(model_fn))

    def build(input_shape, num_classes, **kwargs):
        language_model = "batch_size" in kwargs  # text datasets' models have a fixed batch
        try:
            model = model_fn(input_shape, num_classes, **kwargs)
        except TypeError as error:
            if "argument" not in str(error):
                raise
            fix = (
                "a text dataset needs a language model built for the fixed batch: include "
                "configs/models/lstm_lm_small.gin (tfgrow.grown_model.builder = "
                "@tfgrow.models.lstm_language_model), or give yours a batch_size argument"
                if language_model
                else "use a builder from tfgrow.models (README, 'Configuration') or give yours "
                "these arguments"
            )
            raise InputError(
                f"Expected tfgrow.train.model_fn to accept (input_shape, num_classes"
                f"{', ' + ', '.join(f'{k}=...' for k in kwargs) if kwargs else ''}). Received: "
                f"{builder}, which failed with: {first_line(error)}. Fix: {fix}."
            ) from error
        except ValueError as error:
            if language_model:
                raise
            if "batch_size" not in str(error):  # a builder setting refused (e.g. depth=21)
                raise InputError(
                    f"Expected tfgrow.train.model_fn to build a model from its gin settings. "
                    f"Received: {builder}, which failed with: {first_line(error).rstrip('.')}. "
                    "Fix: correct that setting in the gin config or --gin_bindings."
                ) from error
            raise InputError(  # a language model (fixed batch) on an image dataset
                f"Expected tfgrow.train.model_fn to build a model for the dataset's images of "
                f"shape {tuple(input_shape)}. Received: {builder}, which failed with: "
                f"{first_line(error).rstrip('.')}. Fix: train language models on a text dataset "
                f"(tfgrow.train.dataset in {tuple(data_lib.text.TEXT_DATASETS)}), image models "
                "on image datasets."
            ) from error
        if not isinstance(model, expected) or not (growing_network or _is_functional(model)):
            kind = "a tfgrow growing network" if growing_network else "a Keras functional model"
            raise InputError(
                f"Expected tfgrow.train.model_fn to return {kind}. Received: {builder} returned "
                f"{type(model).__name__}. Fix: use a builder of tfgrow.models made for this "
                "method (growing: @tfgrow.grown_model with tfgrow.grown_model.builder = "
                "@tfgrow.models.keras_resnet_cifar, ...; MorphNet: keras_resnet_cifar, "
                "mobilenet_v1)."
            )
        _check_built_shapes(model, builder, tuple(input_shape), num_classes)
        return model

    return build


def _is_functional(model):
    """Whether `model` is a Keras model with a functional graph (`inputs` and `outputs`)."""
    try:
        return bool(model.inputs) and bool(model.outputs)
    except (AttributeError, ValueError):
        return False


def _check_built_shapes(model, builder, input_shape, num_classes):
    model = getattr(model, "source", model)  # tfgrow.grow's GrowingModel: the Keras model grown
    built_for = tuple(model.inputs[0].shape[1:])
    outputs = model.outputs[0].shape[-1]
    if built_for != input_shape:
        raise InputError(
            f"Expected tfgrow.train.model_fn to build a model for the dataset's images of shape "
            f"{input_shape}. Received: {builder} built {model.name} for {built_for}. Fix: build "
            "the model from the input_shape argument the builder receives."
        )
    if outputs != num_classes:
        raise InputError(
            f"Expected tfgrow.train.model_fn to build a model with {num_classes} outputs (the "
            f"dataset's classes). Received: {builder} built {model.name} with {outputs}. Fix: "
            "build the output layer from the num_classes argument."
        )


def check_dataset_split(
    dataset, data_dir, global_batch_size, max_train, mock_if_missing, strategy, max_eval=None
):
    """Checks that `dataset` exists (or may be mocked) and that its training split, truncated to
    `max_train` examples, holds one global batch for the replicas of `strategy`; a text
    dataset's validation split, truncated to `max_eval` windows, one batch too.

    Returns:
        The number of training examples a run will use (None when mock data decides it).
    """
    num_eval = None
    try:
        info = data_lib.dataset_info(dataset, data_dir=data_dir)
        num_train, num_eval = info.num_train, info.num_eval
    except data_lib.DatasetNotFoundError as error:
        close = difflib.get_close_matches(dataset, data_lib.datasets.KNOWN_DATASETS, n=1)
        if close and "not found" in str(error).lower():
            raise InputError(
                f"Expected tfgrow.train.dataset to name a dataset. Received: {dataset!r}, which "
                f"tfds does not know. Did you mean {close[0]!r}? Fix: set "
                f"{_binding('tfgrow.train.dataset', repr(close[0]))}."
            ) from error
        if not mock_if_missing:
            raise
        num_train = None  # mock data: as many examples as max_train_examples asks for
    if data_lib.text.is_text_dataset(dataset) and strategy.num_replicas_in_sync > 1:
        raise InputError(
            f"Expected one replica for the language-model dataset {dataset!r}: its token streams "
            "continue from one batch to the next in the model's per-row state, which one model "
            f"copy must hold. Received: a strategy with {strategy.num_replicas_in_sync} "
            "replicas. Fix: train on one device (tfgrow.make_strategy.name = 'default')."
        )
    if data_lib.text.is_text_dataset(dataset):
        _check_text_eval_split(dataset, num_eval, max_eval, global_batch_size)
    if max_train is not None:
        num_train = max_train if num_train is None else min(num_train, max_train)
    if num_train is not None:
        check_split_sizes(
            num_train, global_batch_size, strategy.num_replicas_in_sync, dataset, max_train
        )
    return num_train


def _check_text_eval_split(dataset, num_eval, max_eval, global_batch_size):
    """Raises InputError unless a text dataset's validation split (`num_eval` windows, None for
    mock data, truncated to `max_eval`) holds a batch: the fixed-batch streams drop the last
    partial batch, and no batch would report a loss of 0, perplexity 1."""
    limits = [n for n in (num_eval, max_eval) if n is not None]
    if not limits or min(limits) >= global_batch_size:
        return
    source = (
        f"max_eval_examples={max_eval}"
        if max_eval is not None and max_eval < global_batch_size
        else f"{num_eval} windows in the validation split of {dataset!r}"
    )
    raise InputError(
        f"Expected the validation split to hold at least one batch of "
        f"global_batch_size={global_batch_size} streams (a language model evaluates whole "
        f"batches only, so no loss and perplexity would be measured). Received: {source}. Fix: "
        "lower tfgrow.train.global_batch_size or raise tfgrow.train.max_eval_examples."
    )
