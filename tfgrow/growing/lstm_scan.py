"""The masked LSTM recurrence over time with a hand-written gradient (METHOD.md §1.8, Eq. 9).

For the compact executor (`tfgrow.growing.recurrent`): with the projected inputs
`p_t = x_t W + b` (`[T, batch, 4k]`, gate order i, f, c, o as Keras), the recurrent kernel R
(`[k, 4k]`) and the mask values m (`[k]`, constant over time),

    z_t = p_t + h_{t-1} R,    i, f, o = sigmoid(z_i, z_f, z_o),    g = tanh(z_c),
    a_t = f c_{t-1} + i g,    c_t = m a_t,    h_t = m o tanh(c_t).

Autodiff of that loop body re-derives, at every time step, the broadcasts of a width only known
at run time (one trace serves every width): each product's gradient adds BroadcastGradientArgs,
Sum, Reshape and Shape ops (168 ops in the backward loop body against stock Keras' 100), and it
accumulates the recurrent kernel's gradient inside the loop. Here the forward loop keeps z_t, c_t
and h_t, everything else the backward needs is computed for all steps at once, and the reverse
loop only carries dh and dc back through time:

    dh_t = dh_t^out + dz_{t+1} R^T,    dc_t = dc_{t+1}^carried + dh_t m o (1 - tanh^2 c_t),
    da_t = m dc_t,    dc_{t-1}^carried = da_t f,
    dz_t = [da_t g i(1-i), da_t c_{t-1} f(1-f), da_t i (1-g^2), dh_t m tanh(c_t) o(1-o)];

then `dR = sum_t h_{t-1}^T dz_t` (one matmul), `dp = dz`, `dm = sum_{t,b} dh_t o tanh(c_t) +
dc_t a_t`, and the initial states' gradients are the last carries.

Only the standard activations (tanh, sigmoid) have this gradient: `recurrent` checks
`is_standard(cell)` and runs any other LSTM by autodiff of its step, as Keras keeps its cuDNN
kernel to the standard LSTM. The GRU always runs by autodiff.
"""

import keras
import tensorflow as tf


def is_standard(cell):
    """Whether an LSTM cell has Keras' default activations (those `lstm_scan` differentiates)."""
    return (
        cell.activation is keras.activations.tanh
        and cell.recurrent_activation is keras.activations.sigmoid
    )


def lstm_scan(projected, recurrent_kernel, mask, initial_states):
    """Runs the masked standard LSTM over time.

    Args:
        projected: `[T, batch, 4k]`, the projected inputs (bias included).
        recurrent_kernel: `[k, 4k]`.
        mask: `[k]` mask values, or None (all ones; no gradient).
        initial_states: `(h_0, c_0)`, each `[batch, k]`.

    Returns:
        `(h, (h_T, c_T))`: the hidden states of every step (`[T, batch, k]`) and the final states.
    """
    h_0, c_0 = initial_states
    tensors = [projected, recurrent_kernel, h_0, c_0] + ([] if mask is None else [mask])
    hidden, c_last = _fused(*(tf.convert_to_tensor(t) for t in tensors))
    return hidden, (hidden[-1], c_last)


@tf.custom_gradient
def _fused(projected, recurrent_kernel, h_0, c_0, mask=None):
    hidden, cells, pre_activations = _forward(projected, recurrent_kernel, mask, h_0, c_0)

    def gradient(d_hidden, d_c_last):
        return _backward(
            (projected, recurrent_kernel, mask, h_0, c_0),
            (hidden, cells, pre_activations),
            _or_zeros(d_hidden, hidden),
            _or_zeros(d_c_last, c_0),
        )

    return (hidden, cells[-1]), gradient


def _or_zeros(gradient, like):
    return tf.zeros_like(like) if gradient is None else tf.convert_to_tensor(gradient)


def _length(tensor):
    """The size of axis 0: static when known (XLA needs it), else dynamic."""
    return tensor.shape[0] if tensor.shape[0] is not None else tf.shape(tensor)[0]


def _arrays(length, dtype, count):
    return [tf.TensorArray(dtype, size=length) for _ in range(count)]


def _forward(projected, recurrent_kernel, mask, h_0, c_0):
    """h_t, c_t and z_t of every step (each stacked on axis 0)."""
    length = _length(projected)
    inputs = tf.TensorArray(projected.dtype, size=length).unstack(projected)

    def body(t, h, c, outputs):
        z = inputs.read(t) + tf.matmul(h, recurrent_kernel)
        z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
        c = tf.sigmoid(z_f) * c + tf.sigmoid(z_i) * tf.tanh(z_c)
        if mask is not None:
            c = mask * c
        h = tf.sigmoid(z_o) * tf.tanh(c)
        if mask is not None:
            h = mask * h
        outputs = [array.write(t, v) for array, v in zip(outputs, (h, c, z))]
        return t + 1, h, c, outputs

    with tf.name_scope("lstm_scan"):
        loop = (0, h_0, c_0, _arrays(length, projected.dtype, 3))
        _, _, _, outputs = tf.while_loop(
            lambda t, *_: t < length, body, loop, maximum_iterations=length
        )
    return tuple(array.stack() for array in outputs)


def _backward(inputs, forward, d_hidden, d_c_last):
    """Gradients of (projected, recurrent kernel, h_0, c_0[, mask]) (module docstring)."""
    projected, recurrent_kernel, mask, h_0, c_0 = inputs
    hidden, cells, pre_activations = forward
    z_i, z_f, z_c, z_o = tf.split(pre_activations, 4, axis=-1)
    i, f, o, g = tf.sigmoid(z_i), tf.sigmoid(z_f), tf.sigmoid(z_o), tf.tanh(z_c)
    previous_cells = tf.concat([c_0[None], cells[:-1]], 0)
    tanh_c = tf.tanh(cells)
    masked = (lambda v: v) if mask is None else (lambda v: mask * v)
    # Per step: dz = [da, da, da, dh] * gate_factors, dc += dh * cell_factor, carry da * forget.
    gate_factors = tf.concat(
        [
            g * i * (1 - i),
            previous_cells * f * (1 - f),
            i * (1 - g * g),
            masked(tanh_c * o * (1 - o)),
        ],
        -1,
    )
    cell_factor, forget = masked(o * (1 - tanh_c * tanh_c)), masked(f)
    d_z, d_h, d_c, d_h_0, d_c_0 = _reverse_loop(
        recurrent_kernel, mask, d_hidden, (gate_factors, cell_factor, forget), d_c_last
    )
    previous_hidden = tf.concat([h_0[None], hidden[:-1]], 0)
    d_recurrent_kernel = tf.einsum("tbi,tbj->ij", previous_hidden, d_z)
    gradients = [d_z, d_recurrent_kernel, d_h_0, d_c_0]
    if mask is not None:
        before_mask = f * previous_cells + i * g
        gradients.append(tf.reduce_sum(d_h * o * tanh_c + d_c * before_mask, axis=[0, 1]))
    return gradients


def _reverse_loop(recurrent_kernel, mask, d_hidden, factors, d_c_last):
    """dz_t (and with a mask dh_t, dc_t) of every step, and dh_0, dc_0: the loop over time."""
    width = _length(recurrent_kernel)
    sizes = [4 * width, width, width]
    sizes = sizes if isinstance(width, int) else tf.stack(sizes)  # stacked outside the loop
    packed = tf.concat(factors, -1)  # one read and one split per step
    length, dtype = _length(d_hidden), d_hidden.dtype
    upstream = tf.TensorArray(dtype, size=length).unstack(d_hidden)
    steps = tf.TensorArray(dtype, size=length).unstack(packed)
    count = 1 if mask is None else 3

    def body(t, d_h_next, d_c_next, outputs):
        d_h = upstream.read(t) + d_h_next
        gate_factors, cell_factor, forget = tf.split(steps.read(t), sizes, axis=-1)
        d_c = d_c_next + d_h * cell_factor
        d_a = d_c if mask is None else mask * d_c
        d_z = tf.concat([d_a, d_a, d_a, d_h], -1) * gate_factors
        values = (d_z, d_h, d_c)[:count]
        outputs = [array.write(t, v) for array, v in zip(outputs, values)]
        d_h_previous = tf.matmul(d_z, recurrent_kernel, transpose_b=True)
        return t - 1, d_h_previous, d_c * forget, outputs

    with tf.name_scope("lstm_scan_gradient"):
        loop = (length - 1, tf.zeros_like(d_c_last), d_c_last, _arrays(length, dtype, count))
        _, d_h_0, d_c_0, outputs = tf.while_loop(
            lambda t, *_: t >= 0, body, loop, maximum_iterations=length
        )
    stacked = [array.stack() for array in outputs] + [None] * (3 - count)
    return (*stacked, d_h_0, d_c_0)
