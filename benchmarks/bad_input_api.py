"""Bad inputs through the Python API (`benchmarks/bad_inputs.py` runs them in process): each
function takes the case's directory and should raise an error that says what was wrong."""

import os

import numpy as np

from benchmarks.bad_input_cases import Case


def _network():
    import tfgrow
    import tfgrow.models

    return tfgrow.grow(tfgrow.models.keras_resnet_cifar((28, 28, 1), 10))


def _images(*shape):
    return np.zeros(shape, np.float32)


def _call_wrong_channels(root):
    _network()(_images(2, 32, 32, 3))


def _call_wrong_size(root):
    _network()(_images(2, 32, 32, 1))


def _call_without_batch(root):
    _network()(_images(28, 28, 1))


def _fit_wrong_shape(root):
    import keras

    from tfgrow.budget import Budget
    from tfgrow.train.callback import GrowingCallback

    model = _network()
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    images, labels = _images(8, 32, 32, 3), np.zeros(8, np.int32)
    growing = GrowingCallback(Budget(target=0.3))
    model.fit(images, labels, batch_size=4, epochs=1, verbose=0, callbacks=[growing])


def _exported_wrong_shape(root):
    import tensorflow as tf

    from tfgrow.export import plain_model

    path = os.path.join(root, "exported")
    plain_model(_network()).export(path, verbose=False)
    tf.saved_model.load(path).serve(tf.zeros((2, 32, 32, 3)))


def _budget_zero(root):
    from tfgrow.budget import Budget

    Budget(target=0.0)


def _budget_metric(root):
    from tfgrow.budget import Budget

    Budget(metric="param")


def _temperature_mode(root):
    from tfgrow.masks import Temperature

    Temperature(mode="globl")


def _batch_size_zero(root):
    from tfgrow.data import load_dataset

    load_dataset("fashion_mnist", "train", batch_size=0)


def _builder_bad_depth(root):
    import tfgrow.models

    tfgrow.models.keras_resnet_cifar((28, 28, 1), 10, depth=21)


def api_cases():
    """The Python API's bad inputs."""
    return [
        Case("shape", "GrowingModel(28x28x1) called on 32x32x3", "api", api=_call_wrong_channels),
        Case("shape", "GrowingModel(28x28x1) called on 32x32x1", "api", api=_call_wrong_size),
        Case(
            "shape",
            "GrowingModel called on one image without batch axis",
            "api",
            api=_call_without_batch,
        ),
        Case(
            "shape", "model.fit on 32x32x3 images (built for 28x28x1)", "api", api=_fit_wrong_shape
        ),
        Case(
            "shape",
            "exported SavedModel (28x28x1) served 32x32x3",
            "api",
            api=_exported_wrong_shape,
        ),
        Case("api", "Budget(target=0.0)", "api", api=_budget_zero),
        Case("api", "Budget(metric='param')", "api", api=_budget_metric),
        Case("api", "Temperature(mode='globl')", "api", api=_temperature_mode),
        Case("api", "load_dataset(batch_size=0)", "api", api=_batch_size_zero),
        Case("api", "keras_resnet_cifar(depth=21)", "api", api=_builder_bad_depth),
    ]
