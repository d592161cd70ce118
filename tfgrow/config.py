"""Parsing gin configs with errors that say what was received and how to fix it."""

import difflib
import inspect

import gin

# Importing these registers every configurable a config may name.
import tfgrow.budget  # noqa: F401
import tfgrow.growing  # noqa: F401
import tfgrow.models  # noqa: F401
import tfgrow.morphnet  # noqa: F401
import tfgrow.train.loop  # noqa: F401
import tfgrow.train.strategy  # noqa: F401


class ConfigError(ValueError):
    """A gin file or binding that cannot be applied."""


def parse(gin_files, gin_bindings, search_path=None):
    """Parses gin files and bindings; raises ConfigError with a suggestion on failure."""
    if search_path:
        gin.add_config_file_search_path(search_path)
    if not gin_files:
        raise ConfigError(
            "Expected at least one --gin_file. Received none. Start from a file in "
            "configs/experiments/, e.g. --gin_file=configs/experiments/"
            "fashion_mnist_resnet20_grow.gin"
        )
    try:
        gin.parse_config_files_and_bindings(gin_files, gin_bindings)
    except (OSError, ValueError, KeyError, SyntaxError) as error:
        raise ConfigError(_explain(error, gin_files, gin_bindings)) from error


def _explain(error, gin_files, gin_bindings):
    message = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else repr(error)
    known = _known_parameters()
    hints = []
    for binding in gin_bindings:
        key = binding.split("=")[0].strip()
        if key and key not in known:
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.7)
            if close:
                hints.append(f"did you mean {' or '.join(close)} instead of {key}?")
    hint = (" Hint: " + " ".join(hints)) if hints else ""
    return (
        f"Could not apply the gin configuration: {message}. Received: gin_files={gin_files}, "
        f'gin_bindings={gin_bindings}.{hint} README.md ("Configuration") lists the '
        "configurables; parameters are spelled like tfgrow.train.epochs."
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
