"""Params and FLOPs counted from a built Keras model itself, with tfgrow.cost's conventions.

Independent of the channel analysis (tests compare the two): params are the trainable weights
(kernels, biases, BN gamma and beta; moving statistics are not parameters); FLOPs per example are
2 * kh * kw * C_in * C_out * H_out * W_out per conv, 2 * kh * kw * C * H_out * W_out per depthwise
conv (a separable conv counts both parts), 2 * in * out per dense (per position on rank > 2
inputs), 2 * T * (kernel + recurrent kernel entries) per LSTM/GRU over a sequence of length T
(per time step, times T), 0 per Embedding (a lookup); elementwise ops are ignored.
"""

import math

import keras

L = keras.layers


def layer_flops(layer):
    """Forward FLOPs per example of one layer (0 for layers without a kernel, and embeddings)."""
    if isinstance(layer, L.LSTM | L.GRU):
        cell = layer.cell
        steps = layer.input.shape[1]
        return 2 * steps * (math.prod(cell.kernel.shape) + math.prod(cell.recurrent_kernel.shape))
    if isinstance(layer, L.Dense | L.Conv2D | L.DepthwiseConv2D | L.SeparableConv2D):
        shape = layer.output.shape
        positions = math.prod(shape[1:-1]) if len(shape) > 2 else 1
        if isinstance(layer, L.SeparableConv2D):
            depthwise = math.prod(layer.depthwise_kernel.shape)
            return 2 * positions * (depthwise + math.prod(layer.pointwise_kernel.shape))
        return 2 * positions * math.prod(layer.kernel.shape)
    return 0


def count_model(model):
    """(params, FLOPs per example) of a built functional Keras model."""
    params = sum(math.prod(v.shape) for v in model.trainable_variables)
    flops = sum(layer_flops(layer) for layer in model.layers)
    return int(params), int(flops)
