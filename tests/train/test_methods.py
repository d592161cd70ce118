"""Every method `tfgrow.train` accepts has exactly one runner, and each runner takes what `train`
hands it (a runner missing an argument would fail only when a user picks that method)."""

import inspect

from tfgrow.train import loop, methods, plain


def test_every_method_has_one_runner():
    growing = set(methods.METHODS) - set(loop.RUNNERS)
    assert growing == {"grow", "full", "random"}  # GrowingRun's
    assert set(loop.RUNNERS) == set(methods.MORPHNET_METHODS + methods.PLAIN_BASELINES)
    assert len(methods.METHODS) == len(set(methods.METHODS))


def test_every_runner_takes_the_arguments_train_hands_it():
    handed = {*loop.PLAIN_RUN_ARGUMENTS, "model_fn", "strategy", "run_directory"}
    assert handed <= set(inspect.signature(loop.train).parameters) | {"run_directory"}
    # MorphNet's runner names them; the plain baselines' `run(**settings)` pass them all to
    # `PlainRun`.
    for method in methods.MORPHNET_METHODS:
        assert set(inspect.signature(loop.RUNNERS[method]).parameters) == handed
    assert set(inspect.signature(plain.PlainRun).parameters) == handed
