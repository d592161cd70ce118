"""The fused LSTM recurrence (`tfgrow.growing.lstm_scan`) against autodiff of the compact
executor's step (`recurrent._lstm_step` under `tf.scan`): the same outputs, final states and
gradients w.r.t. the projected inputs, the recurrent kernel, the mask values and the initial
states, eagerly and under XLA."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgrow.growing.lstm_scan import is_standard, lstm_scan
from tfgrow.growing.recurrent import _lstm_step

STEPS, BATCH, WIDTH = 6, 3, 5
# Zeros (units not sampled, padding slots under XLA) and fractional values (soft masks).
MASK = [1.0, 0.0, 0.37, 0.8, 0.0]
LAYER = keras.layers.LSTM(WIDTH)  # the autodiff step reads its cell's activations


def _inputs(seed=0, masked=True):
    generator = np.random.default_rng(seed)

    def normal(*shape, scale=1.0):
        return tf.constant(scale * generator.standard_normal(shape), tf.float32)

    return {
        "projected": normal(STEPS, BATCH, 4 * WIDTH),
        "recurrent_kernel": normal(WIDTH, 4 * WIDTH, scale=0.5),
        "mask": tf.constant(MASK) if masked else None,
        "h_0": normal(BATCH, WIDTH),
        "c_0": normal(BATCH, WIDTH),
    }


def _autodiff(projected, recurrent_kernel, mask, initial_states):
    step = _lstm_step(LAYER, recurrent_kernel, mask)
    hidden, cells = tf.scan(step, projected, initializer=initial_states)
    return hidden, (hidden[-1], cells[-1])


def _outputs_and_gradients(run, inputs, return_sequences):
    sources = {name: value for name, value in inputs.items() if value is not None}
    with tf.GradientTape() as tape:
        tape.watch(list(sources.values()))
        hidden, (h_last, c_last) = run(
            inputs["projected"],
            inputs["recurrent_kernel"],
            inputs["mask"],
            (inputs["h_0"], inputs["c_0"]),
        )
        outputs = hidden if return_sequences else h_last
        # The final c enters the loss as a stateful layer's state would in the next batch.
        loss = tf.reduce_sum(tf.sin(3.0 * outputs)) + tf.reduce_sum(tf.cos(2.0 * c_last))
    gradients = tape.gradient(loss, sources)
    return [outputs, c_last], gradients


def _assert_same(inputs, return_sequences, wrap=lambda f: f):
    def run(function):
        return wrap(lambda: _outputs_and_gradients(function, inputs, return_sequences))()

    (fused, fused_gradients), (reference, reference_gradients) = run(lstm_scan), run(_autodiff)
    for a, b in zip(fused, reference):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert set(fused_gradients) == set(reference_gradients)
    for name, gradient in fused_gradients.items():
        np.testing.assert_allclose(
            gradient.numpy(), reference_gradients[name].numpy(), rtol=1e-5, atol=1e-5, err_msg=name
        )
    return fused, fused_gradients


@pytest.mark.parametrize("return_sequences", [True, False], ids=["sequences", "last"])
def test_fused_matches_autodiff(return_sequences):
    (outputs, _), gradients = _assert_same(_inputs(), return_sequences)
    # A unit with mask value 0 computes nothing (h = m o tanh(m a): no first-order gradient
    # either); the others' mask values and the initial cell state get gradients.
    zero = np.array(MASK) == 0
    assert not np.any(outputs.numpy()[..., zero])
    assert np.all(np.abs(gradients["mask"].numpy()[~zero]) > 1e-3)
    assert np.abs(gradients["c_0"].numpy()).max() > 1e-3


def test_fused_matches_autodiff_without_mask():
    _assert_same(_inputs(seed=1, masked=False), return_sequences=True)


@pytest.mark.parametrize("return_sequences", [True, False], ids=["sequences", "last"])
def test_fused_matches_autodiff_under_xla(return_sequences):
    _assert_same(_inputs(seed=2), return_sequences, wrap=lambda f: tf.function(f, jit_compile=True))


def test_only_default_activations_are_fused():
    assert is_standard(keras.layers.LSTM(4).cell)
    assert not is_standard(keras.layers.LSTM(4, activation="relu").cell)
    assert not is_standard(keras.layers.LSTM(4, recurrent_activation="hard_sigmoid").cell)
