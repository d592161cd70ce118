"""The training step on sequence outputs (a language model's `[B, T, V]` logits and `[B, T]`
labels): mean cross-entropy over tokens, token counts, gradient clipping by global norm."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfgrow
from tfgrow.masks import Temperature
from tfgrow.train.trainer import Trainer

BATCH, STEPS, FEATURES, CLASSES = 4, 5, 3, 7


def _sequence_model():
    """A growing network (full width) from `[B, T, F]` to `[B, T, CLASSES]` logits."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(batch_shape=(BATCH, STEPS, FEATURES))
    hidden = keras.layers.Dense(6, activation="tanh", name="hidden")(inputs)
    return tfgrow.grow(keras.Model(inputs, keras.layers.Dense(CLASSES, name="logits")(hidden)),
                       growing=False)  # fmt: skip


def _trainer(model, gradient_clip_norm=None):
    return Trainer(
        model,
        tf.distribute.get_strategy(),
        global_batch_size=BATCH,
        steps_per_epoch=10,
        learning_rate=lambda step: 1.0,
        mask_learning_rate=lambda step: 1.0,
        temperature=Temperature(num_epochs=1),
        momentum=0.0,
        weight_decay=0.0,
        gradient_clip_norm=gradient_clip_norm,
    )


def _batch():
    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(BATCH, STEPS, FEATURES)).astype(np.float32)
    return tf.constant(inputs), tf.constant(rng.integers(0, CLASSES, (BATCH, STEPS)), tf.int32)


def _token_loss_and_gradients(model, batch):
    """Mean cross-entropy over all B x T tokens of the stock Keras model, and its gradients."""
    inputs, labels = batch
    weights = model.source.trainable_weights
    with tf.GradientTape() as tape:
        logits = model.source(inputs)
        loss = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        )  # fmt: skip
    return float(loss), [g.numpy() for g in tape.gradient(loss, weights)], logits


def _weight_steps(model, trainer, batch):
    """-(change of each trainable weight) in one step at learning rate 1: the applied gradient."""
    before = [w.numpy() for w in model.source.trainable_weights]
    results = trainer.train_step(batch)
    return results, [b - w.numpy() for b, w in zip(before, model.source.trainable_weights)]


def test_sequence_loss_is_the_mean_over_tokens_and_metrics_count_tokens():
    model = _sequence_model()
    batch = _batch()
    loss, gradients, logits = _token_loss_and_gradients(model, batch)
    results, steps = _weight_steps(model, _trainer(model), batch)
    assert results["count"].numpy() == BATCH * STEPS
    np.testing.assert_allclose(results["loss_sum"].numpy() / (BATCH * STEPS), loss, rtol=1e-5)
    correct = np.sum(np.argmax(logits.numpy(), -1) == batch[1].numpy())
    assert results["correct"].numpy() == correct
    # Plain SGD at rate 1 applies exactly the gradient of the mean over tokens (a sum over T
    # per example would make it T = 5 times larger).
    for step, gradient in zip(steps, gradients):
        np.testing.assert_allclose(step, gradient, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("clip_norm", [0.1, 1e3])
def test_gradient_clipping_rescales_the_global_norm_only_above_the_limit(clip_norm):
    model = _sequence_model()
    batch = _batch()
    _, gradients, _ = _token_loss_and_gradients(model, batch)
    norm = np.sqrt(sum(np.sum(g**2) for g in gradients))
    assert 0.1 < norm < 1e3
    _, steps = _weight_steps(model, _trainer(model, gradient_clip_norm=clip_norm), batch)
    scale = min(1.0, clip_norm / norm)  # one factor for every weight: the direction is kept
    for step, gradient in zip(steps, gradients):
        np.testing.assert_allclose(step, scale * gradient, rtol=1e-4, atol=2e-7)
