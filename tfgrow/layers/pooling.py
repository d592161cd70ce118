"""Pooling layers that take an `ExecutionContext` like the growable layers (and ignore it)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfgrow")
class Pool2D(keras.layers.Layer):
    """Max pooling (2x2, stride 2, "same") or global average pooling on compact tensors.

    Args:
        kind: "max" or "global_average".

    Call arguments:
        inputs: NHWC tensor.
        context: unused; accepted so that every layer of a growing network is called alike.
    """

    def __init__(self, kind="max", **kwargs):
        super().__init__(**kwargs)
        if kind not in ("max", "global_average"):
            raise ValueError(f"Expected kind 'max' or 'global_average'. Received: {kind!r}")
        self.kind = kind

    def build(self, input_shape):
        self.built = True

    def call(self, inputs, context=None):
        if self.kind == "max":
            return tf.nn.max_pool2d(inputs, 2, 2, padding="SAME")
        return tf.reduce_mean(inputs, axis=[1, 2])

    def output_spatial(self, height, width):
        if self.kind == "max":
            return -(-height // 2), -(-width // 2)
        return 1, 1

    def get_config(self):
        config = super().get_config()
        config.update(kind=self.kind)
        return config
