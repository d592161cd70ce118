"""Compact executors of Keras LSTM, GRU and Embedding layers (METHOD.md §1.8, Eq. 9).

An LSTM's hidden unit j is one structure: its column in each of the four gate blocks of the
kernel `[in, 4u]` (gate order i, f, c, o, block g at columns `g * u + j`) and of the recurrent
kernel `[u, 4u]`, its row of the recurrent kernel, and the next layer's input row. With the mask
values m of the step's units (constant over time), the masked recurrence is

    c_t = m * (f_t * c_{t-1} + i_t * g_t),        h_t = m * o_t * tanh(c_t),

and a GRU's (Keras' gate order z, r, h; `reset_after` as Keras) `h_t = m * (z h_{t-1} + (1 - z) n)`.
A unit with m = 0 has c = h = 0 at every step, so computing only the k active units gives the
same outputs: the executor gathers the gate blocks of the kernel (rows at the active inputs), of
the recurrent kernel (rows and gate-block columns at the active units) and of the bias, projects
the inputs of all time steps with one matmul, then runs a loop over time on `[batch, k]` states
(no gather inside the loop): an LSTM with the standard activations (tanh, sigmoid) by
`tfgrow.growing.lstm_scan` (its gradient written by hand), any other LSTM and the GRU by
`tf.scan` of their step, differentiated by autodiff. The same code runs ragged widths under one
trace and static capacities under XLA (padded slots carry m = 0). Gates and states compute in the
activations' dtype with float32 weights cast to it, as Keras' cells do under a mixed policy.

Stateful layers (`stateful=True`) keep `layer.states` (`[batch, units]` variables, full width):
a pass reads them at the active units (zero at units whose mask value is 0) and writes back the
new states, zero at the other units (a masked unit's c and h are 0). A training pass queues
the write in `context.state_updates` (the training step applies it with the BN statistics); an
inference pass assigns it at once, as Keras' stateful layers do. `reset_states(model)` zeroes them.

An Embedding looks up the ids, keeps the active output dimensions and (as every producer in
`tfgrow.growing.executors`) multiplies them by their mask values.
"""

import keras
import tensorflow as tf

from tfgrow.compact import gather, kernel_rows
from tfgrow.graph.recurrent import RECURRENT, num_gates
from tfgrow.growing.lstm_scan import is_standard, lstm_scan
from tfgrow.masks import ActiveSet
from tfgrow.precision import cast_like

L = keras.layers


def gate_columns(active, units, gates):
    """The active units' columns in every gate block of a `[., gates * units]` kernel."""
    if active.known_complete:
        return active
    indices = tf.concat([active.indices + g * units for g in range(gates)], 0)
    return ActiveSet(indices, None, None, active.complete)


def embedding(layer, ids, out_set, context):
    """Embedding vectors of `ids` at the active output dimensions (before mask values)."""
    if not ids.dtype.is_integer:
        ids = tf.cast(ids, tf.int32)
    vectors = tf.gather(layer.embeddings, ids)  # whole rows: its gradient stays sparse
    vectors = gather(vectors, out_set, len(vectors.shape) - 1, context)
    return tf.cast(vectors, layer.compute_dtype)


def recurrent(layer, x, in_set, out_set, context):
    """An LSTM or GRU on the compact sequence `x` ([batch, T, k_in]), masks applied inside.

    Returns:
        The compact outputs: `[batch, T, k]` with `return_sequences`, else `[batch, k]`.
    """
    cell, gates, units = layer.cell, num_gates(layer), layer.units
    columns = gate_columns(out_set, units, gates)
    kernel = gather(kernel_rows(cell.kernel, in_set, 0, context), columns, 1, context)
    recurrent_kernel = kernel_rows(cell.recurrent_kernel, out_set, 0, context)
    recurrent_kernel = gather(recurrent_kernel, columns, 1, context)
    kernel, recurrent_kernel = cast_like(kernel, x), cast_like(recurrent_kernel, x)
    input_bias, recurrent_bias = _biases(layer, columns, context)
    # One projection of every time step: [T, batch, gates * k].
    projected = tf.einsum("bti,ij->tbj", x, kernel)
    if input_bias is not None:
        projected = projected + cast_like(input_bias, x)
    if recurrent_bias is not None:
        recurrent_bias = cast_like(recurrent_bias, x)
    mask = None if out_set.values is None else cast_like(out_set.values, x)
    initial = _initial_states(layer, x, out_set, context, tf.shape(recurrent_kernel)[0])
    if isinstance(layer, L.LSTM) and is_standard(layer.cell):
        hidden, final = lstm_scan(projected, recurrent_kernel, mask, initial)
    else:
        if isinstance(layer, L.LSTM):
            step = _lstm_step(layer, recurrent_kernel, mask)
        else:
            step = _gru_step(layer, recurrent_kernel, recurrent_bias, mask)
        states = tf.scan(step, projected, initializer=initial)
        hidden, final = states[0], [s[-1] for s in states]
    if layer.stateful:
        _write_states(layer, final, out_set, context)
    if layer.return_sequences:
        return tf.transpose(hidden, [1, 0, 2])
    return hidden[-1]


def _biases(layer, columns, context):
    """(input bias, recurrent bias) at the gate columns; None where the layer has none."""
    cell = layer.cell
    if not cell.use_bias:
        return None, None
    if isinstance(layer, L.GRU) and cell.reset_after:  # bias [2, 3u]: input, recurrent
        bias = gather(cell.bias, columns, 1, context)
        return bias[0], bias[1]
    return gather(cell.bias, columns, 0, context), None


def _lstm_step(layer, recurrent_kernel, mask):
    cell = layer.cell

    def step(states, projected):
        h, c = states
        z = projected + tf.matmul(h, recurrent_kernel)
        z_i, z_f, z_c, z_o = tf.split(z, 4, axis=-1)
        i, f, o = (cell.recurrent_activation(v) for v in (z_i, z_f, z_o))
        c = f * c + i * cell.activation(z_c)
        if mask is not None:
            c = mask * c
        h = o * cell.activation(c)
        if mask is not None:
            h = mask * h
        return h, c

    return step


def _gru_step(layer, recurrent_kernel, recurrent_bias, mask):
    cell = layer.cell

    def step(states, projected):
        (h,) = states
        x_z, x_r, x_h = tf.split(projected, 3, axis=-1)
        width = tf.shape(h)[-1]
        if cell.reset_after:
            inner = tf.matmul(h, recurrent_kernel)
            if recurrent_bias is not None:
                inner = inner + recurrent_bias
            r_z, r_r, r_h = tf.split(inner, 3, axis=-1)
            z = cell.recurrent_activation(x_z + r_z)
            r = cell.recurrent_activation(x_r + r_r)
            candidate = cell.activation(x_h + r * r_h)
        else:
            inner = tf.matmul(h, recurrent_kernel[:, : 2 * width])
            r_z, r_r = tf.split(inner, 2, axis=-1)
            z = cell.recurrent_activation(x_z + r_z)
            r = cell.recurrent_activation(x_r + r_r)
            candidate = cell.activation(x_h + tf.matmul(r * h, recurrent_kernel[:, 2 * width :]))
        h = z * h + (1.0 - z) * candidate
        if mask is not None:
            h = mask * h
        return (h,)

    return step


def _initial_states(layer, x, out_set, context, width):
    """The states at the start of the sequence: a stateful layer's, else zeros ([batch, k])."""
    count = 2 if isinstance(layer, L.LSTM) else 1
    if not layer.stateful:
        zeros = tf.zeros(tf.stack([tf.shape(x)[0], width]), x.dtype)
        return tuple(zeros for _ in range(count))
    _check_one_replica(layer)
    states = [cast_like(gather(state, out_set, 1, context), x) for state in layer.states]
    if out_set.values is not None:
        # Only the step's sampled units carry state in: a unit sampled in the previous batch but
        # not now (or a padding slot, value 0) would otherwise feed its stale state through the
        # recurrent kernel (its row of that kernel is removed with the unit, METHOD.md §1.8).
        sampled = cast_like(tf.cast(tf.not_equal(out_set.values, 0), tf.float32), x)
        states = [state * sampled for state in states]
    return tuple(states)


def _write_states(layer, compact_states, out_set, context):
    """Writes a stateful layer's final states back at full width (zeros at inactive units)."""
    for variable, value in zip(layer.states, compact_states):
        value = tf.cast(value, variable.dtype)
        if not out_set.known_complete:  # [batch, k] -> [batch, units] by a one-hot product
            value = tf.matmul(value, tf.one_hot(out_set.indices, layer.units, dtype=value.dtype))
        if context.training:
            context.state_updates.append((variable, value))
        else:
            variable.assign(value)


def _check_one_replica(layer):
    replica = tf.distribute.get_replica_context()
    if replica is not None and replica.num_replicas_in_sync > 1:
        raise ValueError(
            f"Stateful recurrent layer {layer.name!r} cannot run on "
            f"{replica.num_replicas_in_sync} replicas (its state variables hold one batch). "
            "Train it on one device, or use stateful=False."
        )


def vector_masks(layer, out_mask):
    """id(variable) -> 0/1 mask of the entries a pass computes, for an LSTM/GRU's bias or an
    Embedding's matrix (kernels: `tfgrow.growing.executors.kernels_of`).

    Args:
        layer: the layer.
        out_mask: float 0/1 over its units (or output dimensions), times its block's gate.
    """
    if isinstance(layer, L.Embedding):
        return {id(layer.embeddings): out_mask[None, :]}
    cell = layer.cell
    if not cell.use_bias:
        return {}
    columns = tf.tile(out_mask, [num_gates(layer)])
    return {id(cell.bias): columns if len(cell.bias.shape) == 1 else columns[None, :]}


def reset_states(model):
    """Zeroes the states of every stateful LSTM/GRU of `model` (a Keras model or the source
    model of a `GrowingModel`); call it at the start of every epoch and before evaluation.

    Returns:
        The names of the layers reset.
    """
    source = getattr(model, "source", model)
    reset = []
    for layer in source.layers:
        if isinstance(layer, RECURRENT) and layer.stateful:
            layer.reset_state()
            reset.append(layer.name)
    return reset
