"""Mask groups: the learned logits, counters and temperatures of growable structures.

METHOD.md §1.1-§1.6. A `MaskGroup` owns one vector of logits `s` and counters `u` for a set of
structures that are grown or pruned together: the output channels of a convolution (or of every
producer that adds into one residual stream), or the single gate of a block. Every training step
samples `q ~ Bernoulli(sigma(beta * s))` once for the global batch from a stateless RNG keyed by
seed and step, so every replica draws the same sub-network, and the effective mask is
`m = q * sigma(beta * s)`.
"""

import dataclasses
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

RELAXATIONS = ("sigmoid", "gumbel")
TEMPERATURE_MODES = ("structure", "global")


class ActiveSet(NamedTuple):
    """The structures of one group that take part in a forward pass.

    Attributes:
        indices: int32 vector of active positions on the group's full axis, or None for "all of
            them, unmasked" (the full network).
        values: float vector of mask values at `indices` (multiplies the activations), or None.
        mask: float 0/1 vector over the full axis (1 where active), or None when all are active.
    """

    indices: tf.Tensor | None
    values: tf.Tensor | None
    mask: tf.Tensor | None

    @property
    def is_full(self):
        return self.indices is None


FULL = ActiveSet(None, None, None)


class Gate(NamedTuple):
    """The sampled state of a block's layer mask: `on` (bool scalar) and `value` (m_l)."""

    on: tf.Tensor
    value: tf.Tensor


@dataclasses.dataclass(frozen=True)
class Temperature:
    """Temperature schedule of METHOD.md §1.4: `beta = beta0 * gamma ** u`.

    Args:
        beta0: initial temperature.
        final: temperature reached by a structure active for the whole run; with `num_epochs`
            training epochs `gamma = final ** (1 / num_epochs)` (the paper's 200 ** (1/T)).
        mode: "structure" (u = epochs the structure has been active; the paper's default) or
            "global" (u = epochs elapsed, the same for every structure; the ablation).
        num_epochs: total training epochs T.
    """

    beta0: float = 1.0
    final: float = 200.0
    mode: str = "structure"
    num_epochs: float = 1.0

    def __post_init__(self):
        if self.mode not in TEMPERATURE_MODES:
            raise ValueError(
                f"Expected temperature mode in {TEMPERATURE_MODES}. Received: mode={self.mode!r}"
            )
        if self.beta0 <= 0 or self.final <= 0 or self.num_epochs <= 0:
            raise ValueError(
                "Expected positive beta0, final and num_epochs. Received: "
                f"beta0={self.beta0}, final={self.final}, num_epochs={self.num_epochs}"
            )

    @property
    def gamma(self):
        return self.final ** (1.0 / self.num_epochs)

    def beta(self, counters, epoch):
        """Temperatures for a group with `counters` (epochs active) at `epoch` (float)."""
        exponent = counters if self.mode == "structure" else tf.ones_like(counters) * epoch
        return self.beta0 * tf.pow(tf.constant(self.gamma, counters.dtype), exponent)


@keras.saving.register_keras_serializable(package="tfgrow")
class MaskGroup(keras.layers.Layer):
    """One vector of mask logits, with counters, for structures grown or pruned together.

    Args:
        size: number of structures (the maximal width, or 1 for a block's layer mask).
        kind: "channel" or "layer"; decides which penalty weight (lambda_c or lambda_l) applies.
        num_on: how many structures (the first ones) start on; the rest start off.
        logit_on: initial logit of the structures that start on (METHOD.md §1.5: +3).
        logit_off: initial logit of the others (-3).
        parent: name of the layer group whose block encloses these structures, or None.

    Example:
    >>> group = MaskGroup(16, name="stage1")
    >>> group.build()
    >>> int(group.deterministic_count())
    1
    """

    def __init__(
        self,
        size,
        kind="channel",
        num_on=1,
        logit_on=3.0,
        logit_off=-3.0,
        parent=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(size) < 1:
            raise ValueError(f"Expected a group size >= 1. Received: size={size}")
        if kind not in ("channel", "layer"):
            raise ValueError(f"Expected kind 'channel' or 'layer'. Received: kind={kind!r}")
        if not 0 <= int(num_on) <= int(size):
            raise ValueError(f"Expected 0 <= num_on <= size={size}. Received: num_on={num_on}")
        self.size = int(size)
        self.kind = kind
        self.num_on = int(num_on)
        self.logit_on = float(logit_on)
        self.logit_off = float(logit_off)
        self.parent = parent

    def build(self, input_shape=None):
        initial = np.full((self.size,), self.logit_off, np.float32)
        initial[: self.num_on] = self.logit_on
        self.logits = self.add_weight(
            shape=(self.size,),
            initializer=keras.initializers.Constant(initial),
            trainable=True,
            name="logits",
        )
        self.counters = self.add_weight(
            shape=(self.size,), initializer="zeros", trainable=False, name="counters"
        )
        self.built = True

    def call(self, inputs=None):
        return tf.convert_to_tensor(self.logits)

    def get_config(self):
        config = super().get_config()
        config.update(
            size=self.size,
            kind=self.kind,
            num_on=self.num_on,
            logit_on=self.logit_on,
            logit_off=self.logit_off,
            parent=self.parent,
        )
        return config

    def probabilities(self, temperature, epoch):
        """sigma(beta * s) for every structure (differentiable in the logits)."""
        beta = temperature.beta(tf.convert_to_tensor(self.counters), epoch)
        return tf.sigmoid(beta * self.logits)

    def deterministic_keep(self):
        """Bool vector of H(s) within this group: s > 0 (channel groups keep at least one)."""
        keep = tf.convert_to_tensor(self.logits) > 0
        return keep_at_least_one(keep, self.logits) if self.kind == "channel" else keep

    def deterministic_count(self):
        return tf.reduce_sum(tf.cast(self.deterministic_keep(), tf.int32))


def keep_at_least_one(keep, logits):
    """METHOD.md §1.1: no group is ever empty; fall back to its largest logit."""
    fallback = tf.one_hot(tf.argmax(logits), tf.shape(logits)[0], on_value=True, off_value=False)
    return tf.logical_or(keep, tf.logical_and(fallback, tf.logical_not(tf.reduce_any(keep))))


def step_seed(seed, step):
    """The stateless seed of one training step: the same on every replica and on resume."""
    return tf.random.experimental.stateless_fold_in(
        tf.constant([int(seed), 0], tf.int64), tf.cast(step, tf.int64)
    )


def sample_mask(logits, beta, seed, relaxation="sigmoid", at_least_one=True):
    """Draws q and the mask values m = q * relaxed(beta * s) for one group (METHOD.md §1.2).

    Args:
        logits: float vector s.
        beta: float vector of temperatures.
        seed: int32 [2] stateless seed; the same seed gives the same draw on every replica.
        relaxation: "sigmoid" (q ~ Bernoulli(sigma(beta s)), m = q sigma(beta s)) or "gumbel"
            (binary concrete: z = sigma(beta s + logistic noise), q = 1[z > 0.5], m = q z).
        at_least_one: keep the largest-logit structure when nothing was drawn.

    Returns:
        (q, relaxed): q a bool vector (no gradient) and the relaxed value vector whose entries at
        q carry the gradient to the logits.
    """
    uniform = tf.random.stateless_uniform(tf.shape(logits), seed, minval=1e-6, maxval=1 - 1e-6)
    if relaxation == "sigmoid":
        relaxed = tf.sigmoid(beta * logits)
        q = uniform < tf.stop_gradient(relaxed)
    elif relaxation == "gumbel":
        noise = tf.math.log(uniform) - tf.math.log1p(-uniform)
        relaxed = tf.sigmoid(beta * logits + noise)
        q = tf.stop_gradient(relaxed) > 0.5
    else:
        raise ValueError(f"Expected relaxation in {RELAXATIONS}. Received: {relaxation!r}")
    if at_least_one:
        q = keep_at_least_one(q, logits)
    return q, relaxed


def active_set(keep, values, multiple=1):
    """ActiveSet from a bool keep-vector and the full vector of mask values.

    Args:
        keep: bool vector, the structures that take part.
        values: float vector of mask values over the full axis.
        multiple: round the number of computed channels up to a multiple of this (capped at the
            group size) with unkept channels whose value is 0. Fewer distinct widths mean fewer
            oneDNN primitive rebuilds (measurements: `tfgrow.train.channel_multiple`).
    """
    mask = tf.cast(keep, tf.float32)
    if multiple <= 1:
        indices = tf.cast(tf.reshape(tf.where(keep), [-1]), tf.int32)
        return ActiveSet(indices, tf.gather(values, indices), mask)
    size = tf.size(keep)
    count = tf.reduce_sum(tf.cast(keep, tf.int32))
    padded = tf.minimum(size, (count + multiple - 1) // multiple * multiple)
    # Kept structures first (in index order), then the unkept ones that fill the padding.
    order = tf.argsort(tf.cast(tf.logical_not(keep), tf.int32), stable=True)
    indices = tf.cast(order[:padded], tf.int32)
    return ActiveSet(indices, tf.gather(values * tf.cast(mask, values.dtype), indices), mask)
