"""A run directory records one run: its settings are recorded at the start and compared on rerun.

`tfgrow.train` calls `RunDirectory.claim(arguments)` before any work. A run's *settings* are the
arguments `tfgrow.train` received plus the gin bindings (or defaults) of every other registered
tfgrow configurable, each as a canonical string (macros resolved, `@` references by their Python
path, 1.0 written as 1). The first session records them in `model_dir/run_config.json` (the
chief only, beside `operative_config.gin`); a later session into a directory that holds a result
(a checkpoint, `summary.json` or `final_model.keras`) must have the same settings, or it stops
with `RunDirectoryError` naming each difference and the two ways forward: a new --model_dir, or
`tfgrow.RunDirectory.continue_with_changes=True` to continue on purpose (the change is then
appended to the record's `history`).

Settings that do not change what a run computes may differ (`NEUTRAL_SETTINGS`): where the data is
read from, how often it logs, how checkpoints are kept and which strategy runs it. Epochs are not
neutral: they set the learning-rate schedule and the temperature growth of every step, so a run
extended from 10 to 20 epochs is not the run a 20-epoch config describes.

Every trainer writes its directory's files through `write_json` (atomic; `summary.json`,
`run_config.json`, MorphNet's structure files) and `write_operative_config`.
"""

import functools
import inspect
import json
import math
import os

import gin
import numpy as np
import tensorflow as tf
from absl import logging

RECORD_FILE = "run_config.json"
# Settings that may differ between sessions of one run: they do not change what it computes.
NEUTRAL_SETTINGS = (
    "tfgrow.train.data_dir",
    "tfgrow.train.log_every_steps",
    "tfgrow.train.step_timing_steps",
    "tfgrow.RunCheckpoints.fall_back",
    "tfgrow.RunCheckpoints.max_to_keep",
    "tfgrow.RunDirectory.",  # this opt-in itself
    "tfgrow.make_strategy.",  # resuming on other hardware keeps the global batch and the run
)
# Files that show a directory holds (part of) a run's result.
RESULT_FILES = ("summary.json", "final_model.keras", "checkpoints/checkpoint")
OPT_IN = "--gin_bindings='tfgrow.RunDirectory.continue_with_changes=True'"


class RunDirectoryError(ValueError):
    """A run directory that holds a run with other settings than the ones given now."""


@gin.configurable(module="tfgrow", denylist=["model_dir", "write_dir"])
class RunDirectory:
    """The record of the run a directory holds, and the check that a new session continues it.

    Args:
        model_dir: the run's directory (--model_dir).
        write_dir: where this process writes; the record is written only when it is `model_dir`
            (a multi-worker process that is not the chief checks the chief's record, writes none).
        continue_with_changes: continue a run whose recorded settings differ from the given ones
            (resuming its checkpoints under the new settings) instead of stopping; the
            differences are appended to the record's `history`.
    """

    def __init__(self, model_dir, write_dir=None, continue_with_changes=False):
        self.model_dir = model_dir
        self.write_dir = model_dir if write_dir is None else write_dir
        self.continue_with_changes = bool(continue_with_changes)
        self.settings = None
        self.history = []

    @property
    def record_path(self):
        return os.path.join(self.model_dir, RECORD_FILE)

    def holds_result(self):
        """Whether the directory holds a checkpoint, a summary or a final model of a run."""
        checkpoints = os.path.join(self.model_dir, "checkpoints")
        return any(tf.io.gfile.exists(os.path.join(self.model_dir, f)) for f in RESULT_FILES) or (
            bool(tf.io.gfile.glob(os.path.join(checkpoints, "*.index")))
        )

    def claim(self, arguments):
        """Checks that this session may write to the directory; reads only, writes nothing.

        Args:
            arguments: `tfgrow.train`'s arguments (its `locals()` on entry).

        Raises:
            RunDirectoryError: the directory holds a result of a run with other settings (or of
                a run without a record), and `continue_with_changes` is off.
        """
        self.settings = run_settings(arguments)
        recorded = self._read_record()
        if recorded is None:
            if not self.holds_result():
                return
            differences = None  # a result without a record: written by an earlier tfgrow
        else:
            self.history = list(recorded.get("history", []))
            differences = compare_settings(recorded["settings"], self.settings)
            if not differences:
                return
            if not self.holds_result():
                logging.warning(
                    "%s recorded other settings but holds no checkpoint or summary; recording "
                    "the new ones: %s",
                    self.record_path,
                    describe(differences),
                )
                return
        if not self.continue_with_changes:
            raise RunDirectoryError(self._refusal(differences))
        logging.warning(
            "Continuing the run in %s with changed settings (tfgrow.RunDirectory."
            "continue_with_changes=True): %s",
            self.model_dir,
            describe(differences) if differences else "it had no record of its settings",
        )
        self.history.append({"changed": differences or "no record of the earlier settings"})

    def record(self):
        """Writes the settings claimed to `run_config.json` (chief only), atomically."""
        if self.settings is None:
            raise RuntimeError("RunDirectory.record() needs claim() first.")
        if os.path.normpath(self.write_dir) != os.path.normpath(self.model_dir):
            return
        write_json(self.record_path, {"settings": self.settings, "history": self.history})

    def _read_record(self):
        if not tf.io.gfile.exists(self.record_path):
            return None
        try:
            with tf.io.gfile.GFile(self.record_path) as f:
                recorded = json.load(f)
            if not isinstance(recorded.get("settings"), dict):
                raise ValueError("no 'settings' mapping")
        except (ValueError, AttributeError, tf.errors.OpError) as error:
            raise RunDirectoryError(
                f"Could not read the run record {self.record_path} ({error}), so this session "
                "cannot check that it continues the same run. Choose a new --model_dir, or "
                f"rerun with {OPT_IN} to continue and record the current settings."
            ) from error
        return recorded

    def _refusal(self, differences):
        if differences is None:
            what = (
                f"holds a run without a record of its settings ({RECORD_FILE}; written by an "
                "earlier tfgrow), so this session cannot check that it continues the same run"
            )
        else:
            what = f"holds a run with other settings: {describe(differences)}"
        return (
            f"The run directory {self.model_dir} {what}. Continuing would resume or overwrite "
            "its checkpoints, summary.json and operative_config.gin under settings it may not "
            "have been trained with. Either choose a new --model_dir for the new settings, or, "
            f"to continue this run with them on purpose, rerun with {OPT_IN} (the change is "
            f"recorded in {RECORD_FILE})."
        )


def write_json(path, payload):
    """Writes JSON atomically (a temporary file renamed over the target); non-finite numbers
    (NaN, inf) are written as null, so every JSON reader can read the file."""
    temporary = path + ".tmp"
    with tf.io.gfile.GFile(temporary, "w") as f:
        json.dump(json_safe(payload), f, indent=2, sort_keys=True, allow_nan=False)
    tf.io.gfile.rename(temporary, path, overwrite=True)


def json_safe(value):
    """`value` with numpy scalars as Python numbers and non-finite floats as None."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"Cannot serialise {type(value).__name__} to JSON")


def write_operative_config(directory):
    """Writes gin's operative config (every binding the run has used so far) to
    `directory/operative_config.gin`."""
    with tf.io.gfile.GFile(os.path.join(directory, "operative_config.gin"), "w") as f:
        f.write(gin.config_str())


def run_settings(arguments):
    """{"tfgrow.<configurable>.<parameter>": canonical value} of a run (see the module doc).

    Args:
        arguments: `tfgrow.train`'s arguments; `model_dir` and `strategy` are left out (where the
            run is written and the strategy object are not settings of the run).
    """
    settings = {}
    for selector, configurable in gin.config._REGISTRY.items():
        if not selector.startswith("tfgrow.") or selector == "tfgrow.train":
            continue
        values = _defaults(configurable.wrapped)
        values.update(gin.get_bindings(selector, resolve_references=False))
        for name, value in values.items():
            settings[f"{selector}.{name}"] = canonical(value)
    for name, value in arguments.items():
        if name not in ("model_dir", "strategy"):
            settings[f"tfgrow.train.{name}"] = canonical(value)
    return settings


def compare_settings(recorded, current):
    """{name: [recorded, current]} for every non-neutral setting both define differently.

    A setting only one side defines belongs to a configurable that was not imported in the other
    session; it was at its default there and cannot be compared.
    """
    return {
        name: [recorded[name], current[name]]
        for name in sorted(set(recorded) & set(current))
        if recorded[name] != current[name] and not name.startswith(NEUTRAL_SETTINGS)
    }


def describe(differences):
    return "; ".join(f"{name} was {old}, now {new}" for name, (old, new) in differences.items())


def canonical(value):
    """A stable string for a setting's value: equal strings for values gin treats as equal."""
    if value is gin.REQUIRED:
        return "%gin.REQUIRED"
    if isinstance(value, gin.config.ConfigurableReference):
        text = repr(value)
        if text.startswith("%"):  # a macro: compare what it stands for
            return canonical(gin.query_parameter(text))
        return "@" + _python_path(value.configurable.wrapped) + ("()" if value.evaluate else "")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(canonical(item) for item in value) + "]"
    if isinstance(value, dict):
        items = sorted((canonical(k), canonical(v)) for k, v in value.items())
        return "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))  # epochs=2 and epochs=2.0 are one setting
    if callable(value):
        return "@" + _python_path(value)
    text = repr(value)
    return f"<{type(value).__name__}>" if " at 0x" in text else text


def _python_path(function):
    if isinstance(function, functools.partial):  # no __qualname__: its function and arguments
        arguments = [canonical(a) for a in function.args]
        arguments += [f"{k}={canonical(v)}" for k, v in sorted(function.keywords.items())]
        return f"{_python_path(function.func)}({', '.join(arguments)})"
    module = getattr(function, "__module__", None) or type(function).__module__
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{module}.{name}"


def _defaults(function):
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return {}
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
