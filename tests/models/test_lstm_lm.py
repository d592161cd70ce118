"""Tests for `tfgrow.models.lstm_language_model`: shapes, counts, carried state, initialisation."""

import keras
import numpy as np
import pytest

from tfgrow.growing import grown_model, reset_states
from tfgrow.models import lstm_language_model


def test_parameter_count_and_layers_follow_zaremba():
    vocabulary, embedding, units, batch, steps = 50, 6, 8, 3, 5
    model = lstm_language_model(
        (steps,), vocabulary, batch_size=batch, units=units, embedding_size=embedding
    )
    assert model.input_shape == (batch, steps) and model.output_shape == (batch, steps, 50)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "InputLayer", "Embedding", "Dropout", "LSTM", "Dropout", "LSTM", "Dropout", "Dense"
    ]  # fmt: skip
    lstm = lambda inputs: 4 * (inputs * units + units * units + units)  # noqa: E731
    expected = vocabulary * embedding + lstm(embedding) + lstm(units) + units * vocabulary
    assert model.count_params() == expected + vocabulary
    assert all(layer.stateful for layer in model.layers if isinstance(layer, keras.layers.LSTM))


def test_state_carries_from_one_batch_to_the_next_until_reset():
    keras.utils.set_random_seed(1)
    vocabulary, batch = 30, 2
    tokens = np.random.default_rng(0).integers(0, vocabulary, (batch, 6)).astype(np.int32)
    long = lstm_language_model((6,), vocabulary, batch_size=batch, units=4)
    short = lstm_language_model((3,), vocabulary, batch_size=batch, units=4)
    short.set_weights(long.get_weights())
    whole = long.predict_on_batch(tokens)
    # Two windows of 3 through the stateful model equal one window of 6: the second window
    # starts from the state the first one left.
    first = short.predict_on_batch(tokens[:, :3])
    second = short.predict_on_batch(tokens[:, 3:])
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole, rtol=1e-5, atol=1e-5)
    # Without a reset the third window starts from the second's state; after one, from zeros.
    assert not np.allclose(short.predict_on_batch(tokens[:, :3]), first, atol=1e-4)
    reset_states(short)
    np.testing.assert_allclose(short.predict_on_batch(tokens[:, :3]), first, rtol=1e-5, atol=1e-6)


def test_init_scale_draws_every_kernel_uniformly_and_independently():
    keras.utils.set_random_seed(0)
    scale = 0.04
    model = lstm_language_model((4,), 40, batch_size=2, units=16, init_scale=scale)
    kernels = [w for w in model.weights if "bias" not in w.path]
    assert len(kernels) == 1 + 2 * 2 + 1  # embedding, 2 x (kernel, recurrent), logits
    for weight in kernels:
        values = np.asarray(weight)
        assert np.abs(values).max() <= scale and values.std() > scale / 3  # uniform: s / sqrt 3
    recurrent = [np.asarray(w) for w in model.weights if "recurrent_kernel" in w.path]
    assert not np.allclose(recurrent[0], recurrent[1])


def test_dropout_is_active_only_in_training():
    model = lstm_language_model((4,), 20, batch_size=2, units=8, dropout=0.65)
    rates = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert rates == [0.65] * 3
    tokens = np.ones((2, 4), np.int32)
    assert reset_states(model) == ["lstm_1", "lstm_2"]
    inference = np.asarray(model(tokens, training=False))
    reset_states(model)
    np.testing.assert_allclose(np.asarray(model(tokens, training=False)), inference, atol=1e-6)
    reset_states(model)
    assert not np.allclose(np.asarray(model(tokens, training=True)), inference, atol=1e-4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "batch_size"),
        ({"batch_size": 2, "units": 0}, "units"),
        ({"batch_size": 2, "dropout": 1.0}, "dropout"),
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lstm_language_model((4,), 20, **kwargs)


def test_grown_model_passes_the_run_batch_size_to_the_builder():
    received = []

    def builder(input_shape, num_classes, batch_size):
        received.append(batch_size)
        inputs = keras.Input(batch_shape=(batch_size, *input_shape))
        return keras.Model(inputs, keras.layers.Dense(num_classes)(inputs))

    grown = grown_model((4,), 3, growing=False, builder=builder, batch_size=5)
    assert received == [5] and grown.source.inputs[0].shape == (5, 4)
