"""`tfgrow.models.keras_application`: keras.applications models as plain builders with logits."""

import pytest

from tfgrow.graph import analyze
from tfgrow.models import keras_application


def test_keras_application_pads_small_inputs_to_the_minimum_side():
    model = keras_application((28, 28, 1), 7, name="MobileNet", alpha=0.25)
    assert model.input_shape == (None, 28, 28, 1) and model.output_shape == (None, 7)
    assert model.get_layer("pad_to_min_side").output.shape[1:3] == (32, 32)
    assert model.layers[-1].get_config()["activation"] == "linear"  # logits
    analyze(model)  # one flat functional model the channel graph reads


def test_keras_application_names_what_it_expects():
    with pytest.raises(ValueError, match="Received: name='ResNet51'"):
        keras_application((32, 32, 3), 10, name="ResNet51")
