"""The compact operations of `tfgrow/compact.py` on their own (the engine's use of them is checked
in tests/growing/test_execution.py: compact and dense execution agree)."""

import numpy as np
import pytest
import tensorflow as tf

from tfgrow.compact import BatchNormWeights, batch_norm
from tfgrow.execution import ExecutionContext
from tfgrow.masks import FULL

MOMENTUM, EPSILON = 0.99, 1e-3


# 8 channels take the fused BN op, whose variance is Bessel-corrected; 6 take the unfused moments.
@pytest.mark.parametrize("filters", [8, 6])
def test_batch_norm_normalises_and_updates_with_the_biased_batch_variance(filters):
    rng = np.random.default_rng(3)
    y = tf.constant(rng.normal(1.0, 3.0, (4, 6, 6, filters)).astype(np.float32))
    weights = BatchNormWeights(
        gamma=tf.Variable(tf.linspace(0.5, 2.0, filters)),
        beta=tf.Variable(tf.linspace(-1.0, 1.0, filters)),
        moving_mean=tf.Variable(tf.zeros([filters])),
        moving_variance=tf.Variable(tf.ones([filters])),
    )
    context = ExecutionContext(training=True)
    outputs = batch_norm(y, weights, FULL, context, MOMENTUM, EPSILON)

    mean, variance = y.numpy().mean(axis=(0, 1, 2)), y.numpy().var(axis=(0, 1, 2))  # biased
    expected = (y.numpy() - mean) / np.sqrt(variance + EPSILON)
    expected = expected * weights.gamma.numpy() + weights.beta.numpy()
    np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=1e-4)
    [(mean_variable, new_mean), (variance_variable, new_variance)] = context.state_updates
    assert mean_variable is weights.moving_mean and variance_variable is weights.moving_variance
    np.testing.assert_allclose(new_mean.numpy(), (1 - MOMENTUM) * mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        new_variance.numpy(), MOMENTUM + (1 - MOMENTUM) * variance, rtol=1e-4
    )
