"""Mixed precision: the Keras dtype policies a run trains with, and what stays float32.

A run's policy (`tfgrow.train.dtype_policy`, or `keras.mixed_precision.set_dtype_policy` before
building a model for `model.fit`) is one of `POLICIES`. Under `mixed_bfloat16` and
`mixed_float16` Keras layers keep float32 variables and compute in bfloat16 or float16; tfgrow's
compact executors do the same: weights are gathered in float32 and cast where they meet the
activations (`cast_like`). What stays float32 (METHOD.md, issue 14): mask logits, counters,
temperatures and sampling (`tfgrow.masks`, variables created with `autocast=False`), lambda,
batch norm's statistics and moving statistics (`tfgrow.compact.batch_norm`), the network's
outputs, the loss and the penalty. `mixed_float16` scales the loss (`tfgrow.train.loss_scale`).
"""

import contextlib

import keras
import tensorflow as tf

POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")
# The policy whose float16 gradients underflow without loss scaling (bfloat16 has float32's range).
LOSS_SCALED_POLICY = "mixed_float16"


@contextlib.contextmanager
def dtype_policy_scope(name):
    """Sets Keras' global dtype policy to `name` inside the block, restoring it afterwards.

    Layers built inside the block take the policy (Keras layers read it when constructed).
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def policy_name(layer):
    """The name of a Keras layer's or model's dtype policy, e.g. "mixed_bfloat16"."""
    return layer.dtype_policy.name


def cast_like(tensor, like):
    """`tensor` (a weight or mask vector, float32) cast to the dtype of the activations `like`.

    Free (no op) when the dtypes already agree, as in every float32 run.
    """
    if tensor.dtype == like.dtype:
        return tensor
    return tf.cast(tensor, like.dtype)


def to_float32(tensor):
    """A floating tensor (network outputs, a loss) as float32; other dtypes unchanged."""
    if tensor.dtype.is_floating and tensor.dtype != tf.float32:
        return tf.cast(tensor, tf.float32)
    return tensor


def float32_model(model):
    """`model` (a functional Keras model) with every layer's dtype policy float32, same weights.

    Export writes float32 whatever the run trained with; a model that is float32 already is
    returned as it is.
    """
    if all(policy_name(layer) == "float32" for layer in model.layers):
        return model

    def clone(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    with dtype_policy_scope("float32"):
        copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy
