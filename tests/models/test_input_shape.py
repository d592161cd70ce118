"""A network refuses images of another shape than it was built for, everywhere it is fed: a
direct call, model.fit, and the exported SavedModel's signature. Before, a ResNet-20 built for
28x28x1 ran on 32x32x1 images and returned a result (its convolutions and global pooling take
any size), and 32x32x3 reached a oneDNN error."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfgrow
from tfgrow.budget import Budget
from tfgrow.export import plain_model
from tfgrow.models import keras_resnet_cifar
from tfgrow.train.callback import GrowingCallback

EXPECTED = "Expected images of shape (batch, 28, 28, 1), the shape resnet20 was built for"


@pytest.fixture(scope="module")
def network():
    return tfgrow.grow(keras_resnet_cifar((28, 28, 1), 10, width_multiplier=0.25))


@pytest.mark.parametrize(
    "shape", [(2, 32, 32, 3), (2, 32, 32, 1), (2, 28, 28, 3), (28, 28, 1)], ids=str
)
def test_a_call_on_images_of_another_shape_says_which_shape_was_expected(network, shape):
    with pytest.raises(ValueError, match=r"Expected images of shape \(batch, 28, 28, 1\)") as info:
        network(np.zeros(shape, np.float32))
    assert f"Received: inputs of shape {shape}" in str(info.value)


def test_the_shape_it_was_built_for_runs(network):
    assert network(np.zeros((2, 28, 28, 1), np.float32)).shape == (2, 10)


def test_fit_on_images_of_another_shape_stops_before_a_step(network):
    network.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    before = [v.numpy().copy() for v in network.trainable_variables[:3]]
    with pytest.raises(ValueError, match="Received: inputs of shape \\(4, 32, 32, 3\\)"):
        network.fit(
            np.zeros((8, 32, 32, 3), np.float32),
            np.zeros(8, np.int32),
            batch_size=4,
            epochs=1,
            verbose=0,
            callbacks=[GrowingCallback(Budget(target=0.3))],
        )
    for old, variable in zip(before, network.trainable_variables[:3]):
        np.testing.assert_array_equal(old, variable.numpy())


def test_the_exported_signature_pins_the_shape_it_was_built_for(network, tmp_path):
    plain_model(network).export(str(tmp_path / "exported"), verbose=False)
    loaded = tf.saved_model.load(str(tmp_path / "exported"))  # keeps the variables alive
    serve = loaded.serve
    spec = serve.input_signature[0]
    assert spec.shape.as_list() == [None, 28, 28, 1]
    assert serve(tf.zeros((3, 28, 28, 1))).shape == (3, 10)
    with pytest.raises((TypeError, ValueError), match=r"\(None, 28, 28, 1\)"):
        serve(tf.zeros((2, 32, 32, 3)))
