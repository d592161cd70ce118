"""FLOPs and model-size gamma regularisers (METHOD.md §2), computed in the graph.

For every conv/dense term L with alive input count |A_L| and alive output count |B_L|:

    cost        F_L = C_L |A_L| |B_L|                        depthwise: C_L |B_L|
    regulariser G_L = C_L (|A_L| Σ_j r_out,j + |B_L| Σ_i r_in,i)  depthwise: C_L (Σ r_in + Σ r_out)

with C_L = 2 H_out W_out kh kw for FLOPs and kh kw for size (Dense: 2 per output position and 1).
r is the L∞ group-LASSO vector: for each channel of a group, the largest |gamma| over every
BatchNormalization that scales that channel (the members tied by adds and multiplies, and every
BN that reads it after a concat). A channel is alive when r > gamma_threshold; a prunable group
keeps at least one channel (rebuild never produces an empty layer), fixed groups keep all.
Alive counts enter as constants (stop_gradient); only the |gamma| sums carry gradient.
"""

import keras
import numpy as np
import tensorflow as tf

from tfgrow.graph import analysis as graph_lib
from tfgrow.graph.recurrent import SEQUENCE_PRODUCERS


def check_regularizable(model):
    """Stops with `UnsupportedLayerError` on a layer whose width MorphNet cannot learn.

    An LSTM, GRU or Embedding starts a channel group (`tfgrow.graph.recurrent`) that no
    batch-norm gamma scales: MorphNet's regulariser would see its units as dead (|gamma| 0) and
    cut them to one. Growing (`tfgrow.grow`) learns those widths with its own masks.
    """
    for layer in model.layers:
        if isinstance(layer, SEQUENCE_PRODUCERS):
            raise graph_lib.UnsupportedLayerError(
                f"MorphNet cannot learn the width of layer {layer.name!r} "
                f"({type(layer).__name__}): it regularises batch-norm gammas (METHOD.md §2) and "
                "no gamma scales an LSTM's, GRU's or Embedding's units. Grow the model instead "
                "(tfgrow.grow, configs/methods/grow*.gin), or keep recurrent layers out of a "
                "MorphNet model."
            )


class GammaRegularizer:
    """Resource-weighted L1 on batch-norm gammas of one model.

    Args:
        model: the functional Keras model the graph was analysed from.
        graph: its `ChannelGraph` (from `graph.analyze(model)`).
        resource: "flops" or "size".
        gamma_threshold: a channel is alive when its group |gamma| exceeds this (> 0).

    Example:
        >>> graph = analyze(model)
        >>> regularizer = GammaRegularizer(model, graph, "flops", 1e-2)
        >>> loss = task_loss + strength * regularizer.regularization_term()
    """

    def __init__(self, model, graph, resource="flops", gamma_threshold=1e-2):
        graph_lib.check_resource(resource)
        check_regularizable(model)
        if not gamma_threshold > 0:
            raise ValueError(
                f"Expected a positive gamma_threshold (1e-2 is a sensible default). Received: "
                f"gamma_threshold={gamma_threshold}"
            )
        self.model = model
        self.graph = graph
        self.resource = resource
        self.gamma_threshold = float(gamma_threshold)
        sizes = graph.group_sizes
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.num_channels = int(sizes.sum())
        self.channel_group = np.repeat(np.arange(graph.num_groups), sizes).astype(np.int32)
        self.bn_layers = [model.get_layer(name) for name in graph.gamma_layers]
        entries = []
        for name in graph.gamma_layers:
            for g in _input_layout(graph, name):
                entries.append(self.offsets[g] + np.arange(sizes[g]))
        self.entry_channel = (
            np.concatenate(entries).astype(np.int32) if entries else np.zeros(0, np.int32)
        )
        self.prunable_channel = graph.prunable[self.channel_group]
        self.coefficients = np.array(
            [term.coefficient(resource) for term in graph.cost_terms], np.float64
        )
        self.depthwise = np.array([term.kind == "depthwise" for term in graph.cost_terms], bool)
        self.input_counts = graph.count_matrix("input")
        self.output_counts = graph.count_matrix("output")

    # --- values in the graph -------------------------------------------------------------

    def channel_scores(self):
        """r: per channel, the max |gamma| over its group's BNs; 0 for fixed channels."""
        if not len(self.entry_channel):
            return tf.zeros([self.num_channels], tf.float32)
        gammas = tf.concat(
            [tf.reshape(tf.abs(tf.cast(bn.gamma, tf.float32)), [-1]) for bn in self.bn_layers], 0
        )
        scores = tf.math.unsorted_segment_max(gammas, self.entry_channel, self.num_channels)
        scores = tf.maximum(scores, 0.0)  # channels without an entry get the lowest float
        return scores * tf.constant(self.prunable_channel, tf.float32)

    def alive_widths(self, scores=None):
        """Alive channels per group (float64 tensor, a constant in the gradient)."""
        scores = self.channel_scores() if scores is None else scores
        alive = tf.cast(scores > self.gamma_threshold, tf.float64)
        counts = tf.math.unsorted_segment_sum(alive, self.channel_group, self.graph.num_groups)
        widths = tf.where(
            tf.constant(self.graph.fixed),
            tf.constant(self.graph.group_sizes, tf.float64),
            tf.maximum(counts, 1.0),
        )
        return tf.stop_gradient(widths)

    def _term_counts(self, widths):
        alive_in = tf.linalg.matvec(tf.constant(self.input_counts), widths)
        alive_out = tf.linalg.matvec(tf.constant(self.output_counts), widths)
        return alive_in, alive_out

    def cost(self):
        """The exact resource (FLOPs or weights, METHOD.md §2) of the alive network."""
        alive_in, alive_out = self._term_counts(self.alive_widths())
        per_term = tf.where(self.depthwise, alive_out, alive_in * alive_out)
        return tf.reduce_sum(tf.constant(self.coefficients) * per_term)

    def regularization_term(self):
        """G = Σ_L G_L (float32); its gradient flows into the BN gammas only."""
        scores = self.channel_scores()
        widths = self.alive_widths(scores)
        alive_in, alive_out = self._term_counts(widths)
        group_sums = tf.math.unsorted_segment_sum(
            tf.cast(scores, tf.float64), self.channel_group, self.graph.num_groups
        )
        sum_in, sum_out = self._term_counts(group_sums)
        per_term = tf.where(
            self.depthwise,
            sum_in + sum_out,
            tf.stop_gradient(alive_in) * sum_out + tf.stop_gradient(alive_out) * sum_in,
        )
        return tf.cast(tf.reduce_sum(tf.constant(self.coefficients) * per_term), tf.float32)

    # --- values on the host ----------------------------------------------------------------

    def scores_numpy(self):
        return keras.ops.convert_to_numpy(self.channel_scores())

    def alive_widths_numpy(self):
        return keras.ops.convert_to_numpy(self.alive_widths()).astype(np.int64)

    def keep_alive(self):
        """Per group, the indices of the alive channels (the top-|gamma| one if none is)."""
        return keep_top(self.graph, self.scores_numpy(), self.alive_widths_numpy())


def keep_top(graph, scores, widths):
    """Per group, the indices (sorted) of its `widths[g]` channels with the largest scores."""
    keep = {}
    offset = 0
    for g, size in enumerate(graph.group_sizes):
        size = int(size)
        width = int(widths[g])
        if width > size:
            raise ValueError(
                f"Expected width <= {size} to slice group {graph.group_names[g]!r}. Received: "
                f"{width}; build_at_widths builds wider models (fresh weights)"
            )
        group_scores = np.asarray(scores[offset : offset + size])
        order = np.argsort(-group_scores, kind="stable")
        keep[g] = np.sort(order[:width])
        offset += size
    return keep


def _input_layout(graph, layer_name):
    return graph.input_layouts[layer_name]


def structure_keep(model, graph, structure, gamma_threshold=1e-2):
    """Channels to keep for a structure JSON: per group the `width` largest group |gamma|."""
    widths = graph.widths_from_structure(structure)
    regularizer = GammaRegularizer(model, graph, "flops", gamma_threshold)
    return keep_top(graph, regularizer.scores_numpy(), widths)
