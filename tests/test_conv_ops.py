"""The guarded `Conv2D` gradient (`tfgrow.conv_ops`) equals the true one on every shape.

Strided 1x1 kernels with fewer than 16 input channels take the oneDNN#6035 workaround; its
reference is the stock op on shapes oneDNN handles safely: the same convolution with the input
channels zero-padded to 16 (extra kernel rows zero), whose gradients restricted to the real
channels are the true ones.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgrow.conv_ops import ONEDNN_CHANNEL_BLOCK, _hits_onednn_6035  # installs the guard


def _values_and_gradients(conv, inputs, kernel, strides):
    with tf.GradientTape() as tape:
        tape.watch([inputs, kernel])
        outputs = conv(inputs, kernel, strides)
        # sin(y) * y: a non-uniform upstream gradient, so every output pixel matters.
        loss = tf.reduce_sum(tf.sin(outputs) * outputs)
    return [outputs, *tape.gradient(loss, [inputs, kernel])]


def _stock_conv(inputs, kernel, strides):
    return tf.nn.conv2d(inputs, kernel, strides, padding="SAME")


def _padded_reference(inputs, kernel, strides):
    """Stock conv with the input channels zero-padded to the oneDNN block (safe path)."""
    extra = ONEDNN_CHANNEL_BLOCK - inputs.shape[-1]
    padded_in = tf.pad(inputs, [[0, 0], [0, 0], [0, 0], [0, extra]])
    padded_kernel = tf.pad(kernel, [[0, 0], [0, 0], [0, extra], [0, 0]])
    with tf.GradientTape() as tape:
        tape.watch([padded_in, padded_kernel])
        outputs = tf.nn.conv2d(padded_in, padded_kernel, strides, padding="SAME")
        loss = tf.reduce_sum(tf.sin(outputs) * outputs)
    d_in, d_kernel = tape.gradient(loss, [padded_in, padded_kernel])
    channels = inputs.shape[-1]
    return [outputs, d_in[..., :channels], d_kernel[:, :, :channels]]


@pytest.mark.parametrize(
    "batch, size, channels, filters, strides",
    [(3, 9, 1, 3, 2), (4, 8, 5, 6, 2), (2, 7, 8, 4, 3), (5, 12, 15, 16, 2)],
)
def test_strided_pointwise_workaround_matches_stock_convolution(
    batch, size, channels, filters, strides
):
    rng = np.random.default_rng(batch * size + channels)
    inputs = tf.constant(rng.normal(size=(batch, size, size, channels)), tf.float32)
    kernel = tf.constant(rng.normal(size=(1, 1, channels, filters)), tf.float32)
    assert _hits_onednn_6035(inputs, kernel, strides)
    got = _values_and_gradients(_stock_conv, inputs, kernel, strides)
    want = _padded_reference(inputs, kernel, strides)
    expected_size = -(-size // strides)  # SAME: ceil(size / strides), odd sizes included
    assert got[0].shape == (batch, expected_size, expected_size, filters)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-4)


def test_dynamic_width_takes_workaround_under_one_trace():
    """Ragged widths are unknown at trace time: the workaround runs for every width."""
    kernel_full = tf.constant(np.random.default_rng(0).normal(size=(1, 1, 16, 4)), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, None])])
    def step(inputs):
        kernel = kernel_full[:, :, : tf.shape(inputs)[-1]]
        assert _hits_onednn_6035(inputs, kernel, 2)
        return _values_and_gradients(_stock_conv, inputs, kernel, 2)

    rng = np.random.default_rng(1)
    for channels in (1, 7, 16):
        inputs = tf.constant(rng.normal(size=(2, 6, 6, channels)), tf.float32)
        kernel = kernel_full[:, :, :channels]
        if channels < ONEDNN_CHANNEL_BLOCK:
            want = _padded_reference(inputs, kernel, 2)
        else:  # 16 channels: the stock op is safe
            want = _values_and_gradients(_stock_conv, inputs, kernel, 2)
        for g, w in zip(step(inputs), want):
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-4)
    assert step.experimental_get_tracing_count() == 1


def test_stock_conv2d_gradient_is_guarded_on_import():
    """Importing tfgrow routes stock Conv2D ops (Keras layers) around oneDNN#6035."""
    import tfgrow.conv_ops  # noqa: F401  (the guard is installed on import)
    from tfgrow.conv_ops import guard_stock_conv2d_gradient

    assert guard_stock_conv2d_gradient()  # idempotent: True, nothing wrapped twice
    rng = np.random.default_rng(2)
    inputs = tf.constant(rng.normal(size=(3, 9, 9, 5)), tf.float32)
    kernel = tf.constant(rng.normal(size=(1, 1, 5, 4)), tf.float32)
    for padding in ("SAME", "VALID"):  # a 1x1 kernel pads nothing either way

        def stock(x, k, s, padding=padding):
            return tf.nn.conv2d(x, k, s, padding=padding)

        got = _values_and_gradients(stock, inputs, kernel, 2)
        for g, w in zip(got, _padded_reference(inputs, kernel, 2)):
            np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "channels, kernel_size, strides, filter_gradient_op",
    [(5, 1, 2, False), (16, 1, 2, True), (5, 3, 2, True), (5, 1, 1, True)],
)
def test_only_affected_stock_convolutions_avoid_the_filter_gradient_op(
    channels, kernel_size, strides, filter_gradient_op
):
    import tfgrow  # noqa: F401

    layer = keras.layers.Conv2D(4, kernel_size, strides=strides, padding="same", use_bias=False)
    layer.build((None, 8, 8, channels))

    @tf.function
    def step(inputs):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(inputs))
        return tape.gradient(loss, layer.kernel)

    graph = step.get_concrete_function(tf.TensorSpec([2, 8, 8, channels])).graph
    types = {op.type for op in graph.get_operations()}
    assert ("Conv2DBackpropFilter" in types) == filter_gradient_op, sorted(types)
