"""Parsing gin configs with errors that say what was received and how to fix it."""

import contextlib
import difflib
import inspect
import logging
import os
import tokenize

import gin

# Importing these registers every configurable a config may name.
import tfgrow.baselines.direct_design  # noqa: F401
import tfgrow.baselines.l1_pruning  # noqa: F401
import tfgrow.baselines.magnitude_pruning  # noqa: F401
import tfgrow.budget  # noqa: F401
import tfgrow.growing  # noqa: F401
import tfgrow.models  # noqa: F401
import tfgrow.morphnet  # noqa: F401
import tfgrow.train.loop  # noqa: F401
import tfgrow.train.strategy  # noqa: F401
from tfgrow.errors import first_line


class ConfigError(ValueError):
    """A gin file or binding that cannot be applied."""


# Bound by every experiment (through its model and data files); gin would only notice at the call.
REQUIRED = ("tfgrow.train.model_fn", "tfgrow.train.dataset")


def parse(gin_files, gin_bindings, search_path=None):
    """Parses gin files and bindings; raises ConfigError with a suggestion on failure."""
    if search_path and search_path not in gin.config._LOCATION_PREFIXES:
        gin.add_config_file_search_path(search_path)
    if not gin_files:
        raise ConfigError(
            "Expected at least one --gin_file. Received none. Start from a file in "
            "configs/experiments/, e.g. --gin_file=configs/experiments/"
            "fashion_mnist_resnet20_grow.gin"
        )
    includes = [b.split(None, 1)[1].strip("'\" ") for b in gin_bindings if b.startswith("include ")]
    for path in gin_files:
        _check_file(path, search_path, "--gin_file", f"--gin_file={path}")
    for path in includes:
        _check_file(path, search_path, "an include in --gin_bindings", f"include '{path}'")
    try:
        with _quiet_gin_lookups():
            gin.parse_config_files_and_bindings(gin_files, gin_bindings)
    except (OSError, ValueError, KeyError, TypeError, SyntaxError, tokenize.TokenError) as error:
        raise ConfigError(_explain(error, gin_files, gin_bindings)) from error
    missing = [name for name in REQUIRED if not _is_bound(name)]
    if missing:
        raise ConfigError(
            f"Expected the gin files to set {', '.join(missing)}. Received: gin_files="
            f"{gin_files} and bindings {list(gin_bindings)}, which do not. Fix: start from an "
            "experiment file, e.g. --gin_file=configs/experiments/fashion_mnist_resnet20_grow.gin"
            ", and add your changes after it."
        )


def _check_file(path, search_path, source, received):
    candidates = [path] + ([os.path.join(search_path, path)] if search_path else [])
    places = sorted({os.getcwd(), search_path or os.getcwd()})
    if any(os.path.isfile(candidate) for candidate in candidates):
        return
    what = "a directory" if any(map(os.path.isdir, candidates)) else "not found"
    raise ConfigError(
        f"Expected {source} to name an existing gin file. Received: {received} "
        f"({what}; looked in {' and '.join(places)}). "
        "Fix: pass a file such as configs/experiments/fashion_mnist_resnet20_grow.gin."
    )


def _is_bound(name):
    try:
        gin.query_parameter(name)
    except ValueError:
        return False
    return True


@contextlib.contextmanager
def _quiet_gin_lookups():
    """Hides gin's 'Path not found' log lines (one per search path) behind our own message."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        root.setLevel(level)


def _explain(error, gin_files, gin_bindings):
    message = first_line(error).rstrip(".")
    known = _known_parameters()
    hints = []
    for binding in gin_bindings:
        key = binding.split("=")[0].strip()
        if key and key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.7)
            if close:
                hints.append(f"did you mean {' or '.join(close)} instead of {key}?")
    if isinstance(error, (SyntaxError, tokenize.TokenError)):
        hints.append(
            "a binding is NAME=VALUE with a Python value: strings in quotes, brackets closed, "
            "references as @name."
        )
    hint = (" Hint: " + " ".join(hints)) if hints else ""
    return (
        f"Could not apply the gin configuration: {message}. Received: gin_files={gin_files}, "
        f'gin_bindings={gin_bindings}.{hint} Fix the file or binding; README.md ("Configuration") '
        "lists the configurables, spelled like tfgrow.train.epochs."
    )


def _known_parameters():
    """'module.name.parameter' for every registered configurable (gin has no public listing)."""
    names = []
    for selector, configurable in gin.config._REGISTRY.items():
        try:
            parameters = inspect.signature(configurable.wrapped).parameters
        except (TypeError, ValueError):
            continue
        names += [f"{selector}.{parameter}" for parameter in parameters]
    return names
