"""tfgrow: grow compact networks during training (METHOD.md), and MorphNet, on TensorFlow 2 and
Keras 3.

`tfgrow.grow(model)` turns a Keras functional model into a growing one (`tfgrow.growing`).
Importing `tfgrow` itself loads nothing else (no TensorFlow): the launchers quiet TensorFlow's
start-up before it loads (`tfgrow.cli.quiet_startup`), and `grow` is imported on first use.
"""

__all__ = ["GrowingModel", "grow"]


def __getattr__(name):
    if name in __all__:
        from tfgrow import growing

        return getattr(growing, name)
    raise AttributeError(f"module 'tfgrow' has no attribute {name!r}")
