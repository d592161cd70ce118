"""A guard on TF's Conv2D gradient against oneDNN's strided 1x1 filter-gradient overflow.

oneDNN (v3.7.3 in TensorFlow 2.21, `jit_1x1:avx512_core` and `jit_avx2_1x1`) computes the
filter gradient of a strided 1x1 convolution by first copying the strided input pixels into a
per-thread workspace ("rtus", reduce to unit stride). With NHWC inputs of fewer channels than the
kernel's channel block (16 on AVX-512, 8 on AVX2), it offsets into that workspace by the block
size instead of the channel count and writes past its end: heap corruption, then a segmentation
fault or a glibc abort ("corrupted size vs. prev_size", "malloc(): unaligned tcache chunk") at
some later allocation. Reported upstream as uxlfoundation/oneDNN#6035 ("1x1 convolution
backward_weights writes past the rtus workspace (nhwc, IC < ic_block)"), open.

Minimal reproduction (TF 2.21 CPU, oneDNN on; crashes within a few steps, passes with
TF_ENABLE_ONEDNN_OPTS=0 or with 16 input channels):

    x = tf.random.normal([8, 64, 64, 3])  # also [17, 14, 14, 8]: an odd per-replica batch
    w = tf.Variable(tf.random.normal([1, 1, 3, 3]))
    for _ in range(50):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.nn.conv2d(x, w, 2, "SAME") ** 2)
        tape.gradient(loss, w)  # Conv2DBackpropFilter -> jit_1x1 backward_weights

Whether the overflow lands on live heap data depends on the batch and spatial size (measured
here, 3 input channels: 8x64x64, 8x48x48, 8x96x96, 1x64x64 crash; 8x40x40 and 8x28x28 survive;
8 channels at 14x14: batch 15 and 17 crash, 16 survives), so growing networks hit it: their
active widths start at 1 and their projection shortcuts are strided 1x1 convolutions.
"""

import tensorflow as tf

# oneDNN's input-channel block for f32 on AVX-512; AVX2's is 8, so 16 covers both.
ONEDNN_CHANNEL_BLOCK = 16


def _hits_onednn_6035(inputs, kernel, strides):
    """Whether the filter gradient could reach oneDNN's faulty strided 1x1 path."""
    if strides == 1 or tuple(kernel.shape[:2]) != (1, 1):
        return False
    channels = inputs.shape[-1]
    return channels is None or channels < ONEDNN_CHANNEL_BLOCK


def _strided_pointwise_grads(inputs, kernel, d_outputs, strides):
    """Input and kernel gradients of a SAME 1x1 NHWC convolution, avoiding oneDNN#6035.

    The forward pass and the input gradient are TF's own ops. With SAME padding a 1x1 kernel
    pads nothing, so output pixel (i, j) reads input pixel (s i, s j), and the kernel gradient is
    `subsample(x)^T dy`, a matmul. The subsample is an average pool of window 1 (exact; a strided
    slice costs 3-5x more on CPU). Measured side by side against the stock op on widths it
    handles safely (forward and both gradients, medians of 21 and 41 rounds on a loaded
    machine): [128, 28, 28, 16] -> 32: 0.96x and 0.79x; [128, 14, 14, 32] -> 64: 1.64x and
    0.92x; [32, 64, 64, 16] -> 32: 1.04x and 1.00x; [32, 56, 56, 64] -> 128: 1.04x and 1.03x;
    no consistent difference.
    """
    d_inputs = tf.raw_ops.Conv2DBackpropInput(
        input_sizes=tf.shape(inputs),
        filter=kernel,
        out_backprop=d_outputs,
        strides=[1, strides, strides, 1],
        padding="SAME",
    )
    sampled = tf.nn.avg_pool2d(inputs, 1, strides, padding="SAME")
    d_kernel = tf.matmul(
        tf.reshape(sampled, [-1, tf.shape(inputs)[-1]]),
        tf.reshape(d_outputs, [-1, tf.shape(d_outputs)[-1]]),
        transpose_a=True,
    )
    return d_inputs, tf.reshape(d_kernel, tf.shape(kernel))


def _stock_conv2d_gradient(stock_gradient):
    """TF's `Conv2D` gradient, routed around oneDNN#6035 for the shapes it corrupts."""

    def gradient(op, d_outputs):
        strides = list(op.get_attr("strides"))
        inputs, kernel = op.inputs[0], op.inputs[1]
        affected = (
            op.get_attr("data_format") in (b"NHWC", "NHWC")
            and op.get_attr("padding") in (b"SAME", "SAME", b"VALID", "VALID")
            and list(op.get_attr("dilations")) == [1, 1, 1, 1]
            and strides[0] == strides[3] == 1
            and strides[1] == strides[2]
            and _hits_onednn_6035(inputs, kernel, strides[1])
        )
        if not affected:
            return stock_gradient(op, d_outputs)
        # A 1x1 kernel pads nothing with SAME or VALID: both are the same convolution.
        return list(_strided_pointwise_grads(inputs, kernel, d_outputs, strides[1]))

    gradient.stock_gradient = stock_gradient
    return gradient


def guard_stock_conv2d_gradient():
    """Routes stock `Conv2D` ops (Keras layers, MorphNet's models) around oneDNN#6035.

    TF registers one gradient function per op type; this wraps the registered `Conv2D` one so
    that strided 1x1 NHWC convolutions with fewer than 16 input channels (or an unknown count)
    take `_strided_pointwise_grads` and every other convolution keeps TF's own gradient. Called
    once when this module is imported (below); calling it again changes nothing. TF keeps the
    registry private (`ops._gradient_registry`): if it moves, this is a no-op and returns False
    (`tests/test_conv_ops.py` then fails).

    Returns:
        True if the `Conv2D` gradient is (now) guarded.
    """
    from tensorflow.python.framework import ops  # the registry has no public accessor

    registry = getattr(ops, "_gradient_registry", None)
    entry = getattr(registry, "_registry", {}).get("Conv2D")
    if not isinstance(entry, dict) or not callable(entry.get("type")):
        return False
    if not hasattr(entry["type"], "stock_gradient"):
        entry["type"] = _stock_conv2d_gradient(entry["type"])
    return True


# Installed when this module is first imported: the growing engine's executors
# (tfgrow/growing/executors.py) and MorphNet's and the baselines' training
# (tfgrow/morphnet/phase.py) import it, so every convolution they differentiate is guarded.
guard_stock_conv2d_gradient()
