"""Mask groups: the learned logits, counters and temperatures of growable structures.

METHOD.md §1.1-§1.6. A `MaskGroup` owns one vector of logits `s` and counters `u` for a set of
structures that are grown or pruned together: the output channels of a convolution (or of every
producer that adds into one residual stream), or the single gate of a block. Every training step
samples `q ~ Bernoulli(sigma(beta * s))` once for the global batch from a stateless RNG keyed by
seed and step, so every replica draws the same sub-network, and the effective mask is
`m = q * sigma(beta * s)`.
"""

import dataclasses
import math
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
        complete: whether `indices` is every position in order (`range(size)`): a Python bool
            when known at trace time (FULL, or a full-width capacity), else a bool scalar tensor
            (ragged widths). A complete set reads weights as they are instead of gathering them;
            its mask values still apply.
    """

    indices: tf.Tensor | None
    values: tf.Tensor | None
    mask: tf.Tensor | None
    complete: object = False

    @property
    def is_full(self):
        return self.indices is None

    @property
    def known_complete(self):
        """Whether the set is complete, known at trace time: weights need no gather at all."""
        return self.is_full or (isinstance(self.complete, bool) and self.complete)


FULL = ActiveSet(None, None, None, True)


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
        # Float32 under any dtype policy, and never autocast: read inside a mixed-precision
        # model's call (Keras fit), they would otherwise arrive as bfloat16 (tfgrow.precision).
        self.logits = self.add_weight(
            shape=(self.size,),
            initializer=keras.initializers.Constant(initial),
            dtype="float32",
            trainable=True,
            autocast=False,
            name="logits",
        )
        self.counters = self.add_weight(
            shape=(self.size,),
            initializer="zeros",
            dtype="float32",
            trainable=False,
            autocast=False,
            name="counters",
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
    return fold_in(tf.constant([int(seed), 0], tf.int64), step)


def _mix32(x):
    """MurmurHash3's 32-bit finaliser: a bijection of uint32 that mixes every bit."""
    xor, shift = tf.bitwise.bitwise_xor, tf.bitwise.right_shift
    x = xor(x, shift(x, 16)) * tf.constant(0x85EBCA6B, tf.uint32)
    x = xor(x, shift(x, 13)) * tf.constant(0xC2B2AE35, tf.uint32)
    return xor(x, shift(x, 16))


def _words(tensor):
    """The uint32 halves of every entry of an int64 tensor."""
    values = tf.unstack(tf.reshape(tf.cast(tensor, tf.int64), [-1]))
    low = [tf.cast(tf.bitwise.bitwise_and(v, 0xFFFFFFFF), tf.uint32) for v in values]
    high = [tf.cast(tf.bitwise.right_shift(v, 32), tf.uint32) for v in values]
    return low + high


def _key(seed):
    key = tf.constant(0x9E3779B9, tf.uint32)
    for word in _words(seed):
        key = _mix32(tf.bitwise.bitwise_xor(key, word) + tf.constant(0x7F4A7C15, tf.uint32))
    return key


def fold_in(seed, data):
    """A new int64 [2] seed from `seed` and an integer `data` (step, group index).

    Like `tf.random.experimental.stateless_fold_in`, but exact integer hashing: the same
    result inside and outside XLA (the TF op is not, for large seeds).
    """
    key = _key(tf.concat([tf.reshape(tf.cast(seed, tf.int64), [-1]), [tf.cast(data, tf.int64)]], 0))
    return tf.stack([tf.cast(key, tf.int64), tf.cast(data, tf.int64)])


def portable_uniform(size, seed):
    """`size` uniforms in (0, 1) from a stateless int64 [2] seed, identical with and without XLA.

    `tf.random.stateless_uniform` draws different numbers inside an XLA cluster than in TF's own
    kernels (even with `alg="philox"`), so the same seed would sample different sub-networks in
    the XLA and ragged modes. This counter-based hash uses exact uint32 arithmetic only, so every
    device and compiler gives the same draw: runs are reproducible across modes.
    """
    key = _key(seed)
    counter = tf.cast(tf.range(size), tf.uint32)
    bits = _mix32(
        tf.bitwise.bitwise_xor(_mix32(counter * tf.constant(0x9E3779B9, tf.uint32) + key), key)
    )
    # The top 24 bits, centred in their cell: strictly inside (0, 1).
    return (tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) + 0.5) * (1.0 / (1 << 24))


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
    uniform = portable_uniform(tf.size(logits), seed)
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


def sample_fixed(logits, probability, seed, at_least_one=True):
    """q ~ Bernoulli(probability) for every structure, mask values 1 (METHOD.md §1.9, random).

    The logits only choose the fallback of `at_least_one`; no gradient reaches them.

    Returns:
        (q, values) as `sample_mask`: a bool vector and a vector of ones.
    """
    q = portable_uniform(tf.size(logits), seed) < probability
    if at_least_one:
        q = keep_at_least_one(q, logits)
    return q, tf.ones_like(tf.convert_to_tensor(logits))


def active_set(keep, values, multiple=1):
    """ActiveSet from a bool keep-vector and the full vector of mask values.

    Args:
        keep: bool vector, the structures that take part.
        values: float vector of mask values over the full axis.
        multiple: round the number of computed channels up to a multiple of this (capped at the
            group size) with unkept channels whose value is 0. Fewer distinct widths mean fewer
            oneDNN primitive rebuilds, and multiples of 4 let batch norm run as one fused op
            (`tfgrow.compact.fuses_batch_norm`; exact widths stay unfused). 8 measured fastest on
            oneDNN CPUs: the main job's grown ResNet-20 steps in 113 ms at 8, 115-119 ms at 4 and
            about 121 ms at 1 (its full network: 140 ms). Under XLA it is the capacity ladder's
            step: `configs/modes/xla.gin` sets 4 (finer capacities measured faster),
            `configs/modes/tpu.gin` 128 (TPU lanes).
    """
    mask = tf.cast(keep, tf.float32)
    selected = keep
    if multiple > 1:
        size = tf.size(keep)
        count = tf.reduce_sum(tf.cast(keep, tf.int32))
        padded = tf.minimum(size, (count + multiple - 1) // multiple * multiple)
        # The first `padded - count` unkept structures (in index order) fill the padding.
        unkept = tf.logical_not(keep)
        filler = tf.cumsum(tf.cast(unkept, tf.int32)) <= padded - count
        selected = tf.logical_or(keep, tf.logical_and(unkept, filler))
    # In index order, so a complete set's indices are range(size) (`ActiveSet.complete`).
    indices = tf.cast(tf.reshape(tf.where(selected), [-1]), tf.int32)
    complete = tf.equal(tf.size(indices), tf.size(keep))
    values = tf.gather(values * tf.cast(mask, values.dtype), indices)
    return ActiveSet(indices, values, mask, complete)


def all_complete(flags):
    """`ActiveSet.complete` of sets laid side by side: a Python bool when known, else a tensor."""
    if not all(flag for flag in flags if isinstance(flag, bool)):
        return False
    dynamic = [flag for flag in flags if not isinstance(flag, bool)]
    return tf.reduce_all(tf.stack(dynamic)) if dynamic else True


# Capacities as fractions of a group's size; each is rounded up to the channel multiple.
CAPACITY_FRACTIONS = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0)


def capacity_ladder(size, multiple=8, fractions=CAPACITY_FRACTIONS):
    """The static sizes a group of `size` structures may run at (DESIGN.md, XLA capacities).

    >>> capacity_ladder(64)
    [8, 16, 24, 32, 40, 48, 56, 64]
    >>> capacity_ladder(16)
    [8, 16]
    """
    multiple = max(1, int(multiple))
    rungs = {min(size, max(multiple, math.ceil(size * f / multiple) * multiple)) for f in fractions}
    return sorted(rungs | {int(size)})


def choose_capacity(ladder, need):
    """The smallest rung of `ladder` that holds `need` structures (the top rung at most)."""
    for rung in ladder:
        if rung >= need:
            return rung
    return ladder[-1]


def count_bound(probabilities, sigmas=4.0):
    """A high quantile of the number of structures drawn: mean + `sigmas` standard deviations
    of the Poisson-binomial count with these inclusion probabilities (numpy, host side).

    The count is an integer, so the bound is floored: P(count <= floor(x)) = P(count <= x).
    Without the floor, saturated probabilities (sigmoid(-30) = 9e-14, not 0) put 8 certain
    structures at 8.000004 and the capacity one ladder rung too wide.
    """
    p = np.asarray(probabilities, np.float64)
    bound = p.sum() + sigmas * np.sqrt((p * (1.0 - p)).sum())
    return float(math.floor(bound + 1e-6))  # 1e-6: float error below an integer


def capacity_set(keep, values, priority, capacity):
    """ActiveSet of exactly `capacity` slots: static shapes for XLA and stable oneDNN plans.

    The kept structures with the highest `priority` fill the slots first; spare slots carry
    unkept structures with mask value 0. When more than `capacity` structures are kept, the
    lowest-priority ones are dropped from this pass (their mask becomes 0).

    Args:
        keep: bool vector of sampled structures.
        values: float vector of mask values over the full axis.
        priority: float vector ranking kept structures (their probabilities sigma(beta s)).
        capacity: Python int, the number of computed slots.

    Returns:
        (ActiveSet, number of kept structures dropped for lack of capacity (int32 scalar)).
    """
    size = int(keep.shape[0])
    capacity = min(int(capacity), size)
    if capacity == size:  # every structure has a slot: no selection, weights read as they are
        mask = tf.cast(keep, tf.float32)
        values = values * tf.cast(mask, values.dtype)
        return ActiveSet(tf.range(size), values, mask, True), tf.constant(0, tf.int32)
    priority = tf.stop_gradient(tf.cast(priority, tf.float32))
    # Kept structures score in [2, 3], unkept ones in [0, 1]: kept first, by priority.
    score = priority + 2.0 * tf.cast(keep, tf.float32)
    _, slots = tf.math.top_k(score, k=capacity, sorted=False)
    indices = tf.sort(tf.cast(slots, tf.int32))
    in_slots = tf.scatter_nd(indices[:, None], tf.ones([capacity], tf.bool), [size])
    kept = tf.logical_and(keep, in_slots)
    mask = tf.cast(kept, tf.float32)
    dropped = tf.reduce_sum(tf.cast(keep, tf.int32)) - tf.reduce_sum(tf.cast(kept, tf.int32))
    active = ActiveSet(indices, tf.gather(values * tf.cast(mask, values.dtype), indices), mask)
    return active, dropped
