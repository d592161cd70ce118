"""Recurrent layers and embeddings in the channel graph (METHOD.md §1.8).

Keras `LSTM`, `GRU` and `Embedding` each start a channel group: an LSTM's or GRU's hidden units
(one structure per unit, shared by its gates), an Embedding's output dimensions. An LSTM/GRU
reads the layout of its input (the preceding group: an Embedding's dimensions, the previous
layer's units). Their cost terms:

- LSTM with `u` units on `n` inputs: kernel `[n, 4u]`, recurrent kernel `[u, 4u]` (a term
  quadratic in its own group), bias `[4u]`; GRU: gates 3, bias `[3u]`, or `[2, 3u]` with
  `reset_after` (an input and a recurrent bias).
- FLOPs per example: `2 * gates * (n u + u u)` per time step, times the sequence length T
  (like a conv's FLOPs, per example); gate nonlinearities and other elementwise ops are ignored.
- Embedding: `vocab * dim` parameters, 0 FLOPs (a lookup).

What the graph engine does not support stops the analysis with a message (`unsupported`).
"""

import keras

L = keras.layers

RECURRENT = (L.LSTM, L.GRU)
SEQUENCE_PRODUCERS = (L.LSTM, L.GRU, L.Embedding)


def num_gates(layer):
    """Gate blocks of a recurrent layer's kernels: LSTM 4 (i, f, c, o), GRU 3 (z, r, h)."""
    return 4 if isinstance(layer, L.LSTM) else 3


def width(layer):
    """The size of the group the layer starts: units, or an Embedding's output dimensions."""
    return layer.output_dim if isinstance(layer, L.Embedding) else layer.units


def unsupported(layer, node):
    """Why the channel graph cannot take this LSTM/GRU/Embedding node, or None."""
    if isinstance(layer, L.Embedding):
        if layer.mask_zero:
            return (
                "mask_zero=True is not supported (padding masks are not carried through the "
                "compact graph); use mask_zero=False and sequences without padding"
            )
        return None
    if layer.dropout or layer.recurrent_dropout:
        return (
            f"dropout={layer.dropout} and recurrent_dropout={layer.recurrent_dropout} are not "
            "supported (the compact recurrence has no dropout masks); set both to 0 and put "
            "keras.layers.Dropout layers between the recurrent layers"
        )
    if layer.go_backwards:
        return "go_backwards=True is not supported; reverse the sequence before the layer"
    if layer.return_state:
        return "return_state=True is not supported; use return_sequences for the outputs"
    if len(node.input_tensors) != 1:
        return (
            "initial_state inputs are not supported; call it on the sequence alone (stateful "
            "layers carry their state between batches)"
        )
    if node.input_tensors[0].shape[1] is None:
        return (
            "its sequence length is unknown; build the model with a fixed length (e.g. "
            "keras.Input(batch_shape=(batch, T)))"
        )
    return None


def cost_terms(layer, node, layout_in, layout_out):
    """The raw cost terms `(name, kind, flops coefficient, size coefficient, in, out)`."""
    if isinstance(layer, L.Embedding):
        return [(layer.name, "embedding", 0, layer.input_dim, (), layout_out)]
    gates = num_gates(layer)
    flops = 2 * gates * node.input_tensors[0].shape[1]
    return [
        (layer.name, "conv", flops, gates, layout_in, layout_out),
        (layer.name + "/recurrent", "conv", flops, gates, layout_out, layout_out),
    ]
