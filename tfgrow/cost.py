"""Parameter and FLOP counts of an architecture (METHOD.md §1.7).

A network is described by a list of `LayerCost` entries, one per conv/dense layer. Counting takes
the width of every channel group and the state (0/1) of every block, given either as Python
numbers (an architecture such as H(s)) or as tensors (the sub-network sampled in a training step),
so one formula serves the summary, the budget and the training-FLOPs accumulator.

- params: kernel and bias weights, plus BN gamma and beta (moving statistics and mask logits are
  not parameters).
- FLOPs per example: 2 * kh * kw * C_in * C_out * H_out * W_out per conv (depthwise:
  2 * kh * kw * C * H_out * W_out), 2 * in * out per dense; elementwise ops are ignored.
- LSTM/GRU (`tfgrow.graph.recurrent`): two "dense" entries of `gates` side-by-side matrices, the
  kernel (in -> units) and the recurrent kernel (units -> units: quadratic in the units' width),
  output_pixels = the sequence length T (FLOPs per example: per time step times T); Embedding:
  an "embedding" entry, vocab * dim params and no FLOPs.
"""

import dataclasses
import functools
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

TRAINING_FLOPS_PER_FORWARD = 3  # forward + backward (two matmuls per forward one)


@dataclasses.dataclass(frozen=True)
class LayerCost:
    """The shape of one conv or dense layer, as far as counting needs it.

    Attributes:
        name: the layer's name.
        kind: "conv", "depthwise", "dense", "embedding" (input_width rows of output_width
            entries, no FLOPs) or "batch_norm" (a batch norm of its own: no FLOPs, its gamma and
            beta counted by `use_batch_norm`, or one of them by `use_bias`).
        kernel_size: (kh, kw); (1, 1) for dense.
        output_pixels: H_out * W_out (1 for dense).
        input_group: channel group of the input, or None when the input width is fixed.
        output_group: channel group of the output, or None when fixed.
        input_width: the full input width.
        output_width: the full output width.
        use_bias: whether the layer has a bias vector.
        use_batch_norm: whether a BN (gamma, beta) follows.
        block: the name of the block whose layer mask encloses the layer, or None.
        input_layout, output_layout: for a side made of several groups (after a Concatenate or
            a Flatten), `((group or None, full width, repeats), ...)`; it replaces the side's
            group and width (None marks a fixed group).
        input_size: (H, W) of a conv's input ((), dense and batch norm); with `strides`, what
            the latency table (`tfgrow.latency`) times the layer at.
        strides: a conv's strides.
        gates: the layer is this many such layers side by side (kernel, bias and FLOPs): an
            LSTM's 4 gate blocks, a GRU's 3; 1 otherwise.
    """

    name: str
    kind: str
    kernel_size: tuple
    output_pixels: int
    input_group: str | None
    output_group: str | None
    input_width: int
    output_width: int
    use_bias: bool = False
    use_batch_norm: bool = True
    block: str | None = None
    input_layout: tuple = ()
    output_layout: tuple = ()
    input_size: tuple = ()
    strides: tuple = (1, 1)
    gates: int = 1


def exact(value):
    """Python numbers stay exact; tensors become float64 (no int32 overflow, mixes with 0/1)."""
    return tf.cast(value, tf.float64) if tf.is_tensor(value) else value


def _width(group, full_width, widths):
    if group is None:
        return full_width
    return exact(widths[group])


def side_width(group, full_width, layout, widths):
    """The width of one side of a layer (a group, a fixed width, or a layout of groups)."""
    if not layout:
        return _width(group, full_width, widths)
    return sum(repeats * _width(name, size, widths) for name, size, repeats in layout)


def layer_widths(layer, widths):
    """(C_in, C_out) of `layer` at `widths` (missing groups: full; Python numbers or tensors)."""
    c_in = side_width(layer.input_group, layer.input_width, layer.input_layout, widths)
    c_out = side_width(layer.output_group, layer.output_width, layer.output_layout, widths)
    return c_in, c_out


def _layer_counts(layer, widths):
    c_in, c_out = layer_widths(layer, widths)
    kh, kw = layer.kernel_size
    if layer.kind == "batch_norm":  # gamma and beta: counted below (use_batch_norm)
        params, flops = 0, 0
    elif layer.kind == "depthwise":
        params = kh * kw * c_out
        flops = 2 * kh * kw * c_out * layer.output_pixels
    elif layer.kind in ("conv", "dense"):
        params = layer.gates * kh * kw * c_in * c_out
        flops = 2 * layer.gates * kh * kw * c_in * c_out * layer.output_pixels
    elif layer.kind == "embedding":
        params, flops = c_in * c_out, 0
    else:
        raise ValueError(
            f"Expected kind conv, depthwise, dense, embedding or batch_norm. Received: "
            f"{layer.kind!r}"
        )
    if layer.use_bias:
        params = params + layer.gates * c_out
    if layer.use_batch_norm:
        params = params + 2 * c_out
    return params, flops


def count(layers, widths, blocks=None):
    """Returns (params, flops per example) of the network at the given widths and blocks.

    Python numbers give exact integers. Tensors (a training step's sampled widths) give float64
    tensors from `QuadraticForm`, a few matrix ops instead of a dozen ops per layer.

    Args:
        layers: sequence of LayerCost.
        widths: mapping channel group -> active width (int or scalar tensor).
        blocks: mapping block name -> 0/1 (int, float or tensor); missing blocks are on.
    """
    blocks = blocks or {}
    if any(tf.is_tensor(value) for value in (*widths.values(), *blocks.values())):
        return QuadraticForm.of(tuple(layers)).evaluate(widths, blocks)
    total_params, total_flops = 0, 0
    for layer in layers:
        params, flops = _layer_counts(layer, widths)
        if layer.block is not None and layer.block in blocks:
            on = exact(blocks[layer.block])
            params, flops = params * on, flops * on
        total_params = total_params + params
        total_flops = total_flops + flops
    return total_params, total_flops


def _groups_of(layer):
    names = [layer.input_group, layer.output_group]
    names += [name for name, _, _ in layer.input_layout + layer.output_layout]
    return sorted({name for name in names if name is not None})


class QuadraticForm:
    """(params, FLOPs) of a layer list as quadratic polynomials of the group widths.

    Every layer's counts are a polynomial of degree <= 2 in the widths of the groups it reads
    (C_in * C_out, C_out, ...), switched by its block's 0/1 state. The coefficients are read off
    the exact counter (`count` on Python numbers) at a few integer widths per layer, so the form
    counts exactly what the counter counts, for every layer kind; `of` checks it at full width.
    Evaluating it on tensors takes about ten ops: `c + B w + w^T A w` per block, weighted by the
    blocks' states.
    """

    def __init__(self, layers):
        self.full = full_widths(layers)
        self.groups = sorted(self.full)
        self.blocks = sorted({layer.block for layer in layers if layer.block is not None})
        index = {name: i for i, name in enumerate(self.groups)}
        size, rows = len(self.groups), 1 + len(self.blocks)
        constant = np.zeros((2, rows))
        linear = np.zeros((2, rows, size))
        quadratic = np.zeros((2, rows, size, size))
        for layer in layers:
            row = 0 if layer.block is None else 1 + self.blocks.index(layer.block)
            names = _groups_of(layer)

            def at(*ones, _layer=layer, _names=names):
                widths = {name: 0 for name in _names}
                for name in ones:
                    widths[name] += 1
                return np.array(_layer_counts(_layer, widths), np.float64)

            base = at()
            constant[:, row] += base
            for n, name in enumerate(names):
                one, two = at(name), at(name, name)
                square = (two - 2 * one + base) / 2
                quadratic[:, row, index[name], index[name]] += square
                linear[:, row, index[name]] += one - base - square
                for other in names[n + 1 :]:
                    cross = at(name, other) - one - at(other) + base
                    quadratic[:, row, index[name], index[other]] += cross
        self.constant, self.linear, self.quadratic = constant, linear, quadratic

    @classmethod
    @functools.lru_cache(maxsize=16)
    def of(cls, layers):
        """The form of a tuple of LayerCost (cached), checked against `count` at full width."""
        form = cls(layers)
        full = full_widths(layers)
        expected = count(layers, full)
        received = form.evaluate(full, {}, as_numpy=True)
        if not np.allclose(received, expected, rtol=1e-9):
            raise ValueError(
                f"Expected every layer's counts to be quadratic in its widths. The form gives "
                f"{received.tolist()} at full width, the counter {list(expected)}."
            )
        return form

    def evaluate(self, widths, blocks, as_numpy=False):
        """(params, flops) at widths and blocks (missing: full width, on): float64 tensors, or
        a numpy array with `as_numpy`."""
        w = [widths.get(name, self.full[name]) for name in self.groups]
        on = [1.0] + [blocks.get(name, 1.0) for name in self.blocks]
        if as_numpy:
            w, on = np.asarray(w, np.float64), np.asarray(on, np.float64)
            per_row = self.constant + self.linear @ w + (self.quadratic @ w) @ w
            return per_row @ on
        w = tf.stack([tf.cast(value, tf.float64) for value in w])
        on = tf.stack([tf.cast(value, tf.float64) for value in on])
        per_row = (
            self.constant
            + tf.linalg.matvec(self.linear, w)
            + tf.linalg.matvec(tf.linalg.matvec(self.quadratic, w), w)
        )
        totals = tf.linalg.matvec(per_row, on)
        return totals[0], totals[1]


def full_widths(layers):
    """The maximal width of every channel group named by `layers`."""
    widths = {}
    for layer in layers:
        for name, size, _ in layer.input_layout + layer.output_layout:
            if name is not None:
                widths[name] = size
        if layer.input_group is not None:
            widths[layer.input_group] = layer.input_width
        if layer.output_group is not None:
            widths[layer.output_group] = layer.output_width
    return widths


def training_flops(forward_flops_per_example, batch_size):
    """Training FLOPs of one step: 3 x forward FLOPs x batch size (METHOD.md §1.7)."""
    return TRAINING_FLOPS_PER_FORWARD * forward_flops_per_example * batch_size


def fraction(layers, widths, blocks, metric, latency=None):
    """The cost of (widths, blocks) as a fraction of the full network.

    Args:
        layers, widths, blocks: as `count`.
        metric: "params", "flops" or "latency" (predicted training-step time).
        latency: the `tfgrow.latency.LatencyTable` of `layers` (metric "latency" only).
    """
    if metric == "latency":
        if latency is None:
            raise ValueError(
                "Expected a LatencyTable for the budget metric 'latency' (a growing run builds "
                "one at its start when tfgrow.Budget.metric = 'latency'). Received: none. Use "
                "the launcher, or metric 'params' or 'flops'."
            )
        return latency.fraction(widths, blocks)
    if metric not in ("params", "flops"):
        raise ValueError(f"Expected metric 'params', 'flops' or 'latency'. Received: {metric!r}")
    index = 0 if metric == "params" else 1
    current = count(layers, widths, blocks)[index]
    full = count(layers, full_widths(layers), {})[index]
    return current / full


def as_python(mapping: Mapping):
    """Converts a mapping of scalar tensors to Python ints (for summaries)."""
    return {key: int(value) for key, value in mapping.items()}
