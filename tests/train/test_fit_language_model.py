"""Keras `fit` with a GrowingCallback on your own recurrent language model (Embedding -> LSTM ->
Dense over a vocabulary of 16): the task loss falls, units are sampled, the budget grows the
network towards its target, the export computes the grown model's inference, and stateful LSTMs
restart their streams at every epoch and evaluation as the launcher's do and refuse batches of
another size."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfgrow
from tests.fixtures.processes import REPO
from tfgrow.budget import Budget
from tfgrow.export import plain_model
from tfgrow.growing import reset_states
from tfgrow.train.callback import GrowingCallback


# README "A language model of your own" (fit on a recurrent model), read from the README so the
# two cannot drift; 6 s on the 2-core CPU beside other jobs (10 s at load 11). Its windows follow
# token t by t + 1 (mod 16): learnable in a few epochs.
def _readme_example():
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    section = readme[readme.index("### A language model of your own") :]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_language_model_example_trains_grows_and_exports():
    keras.utils.set_random_seed(0)
    namespace = {}
    exec(_readme_example(), namespace)  # in-process: a subprocess would add ~6 s of imports
    model, history = namespace["model"], namespace["history"].history
    cross_entropy = history["cross_entropy"]
    assert cross_entropy[-1] < 0.9 * cross_entropy[0]  # 2.77 (log 16) -> 2.20
    # Grown from one unit per group (3% of the parameters) to the 50% target within epoch 1.
    assert all(abs(fraction - 0.5) < 0.1 for fraction in history["budget_fraction"])
    widths, _ = model.architecture()
    sizes = {name: group.size for name, group in model.channel_groups.items()}
    assert all(1 < widths[name] < sizes[name] for name in sizes), widths
    # 96 steps of 1/32 epoch each: sampled units gain counters, the seed unit most of 3 epochs.
    for name, group in model.channel_groups.items():
        counters = group.counters.numpy()
        assert 2.0 <= counters.max() <= 3.0 and np.count_nonzero(counters) > 1, name
    plain = namespace["plain"]
    assert all(type(layer).__module__.startswith("keras.") for layer in plain.layers)
    assert plain.count_params() == history["params"][-1]


class _StateProbe(keras.callbacks.Callback):
    """Largest |state| of the stateful LSTM where an epoch, its last batch and an evaluation
    begin (listed after the GrowingCallback, it sees the states the growing callback left)."""

    def __init__(self, layer):
        super().__init__()
        self.layer, self.seen = layer, []

    def _record(self, event):
        self.seen.append((event, max(float(np.abs(s.numpy()).max()) for s in self.layer.states)))

    def on_epoch_begin(self, epoch, logs=None):
        self._record("epoch")

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.params["steps"] - 1:
            self._record("trained")

    def on_test_begin(self, logs=None):
        self._record("evaluation")


def test_a_stateful_language_model_restarts_its_streams_each_epoch_and_evaluation():
    # 8 batches of 8 streams of 6 tokens per epoch (a fixed batch of 8); fit does not reset
    # stateful layers itself (epoch 2 would start from the states epoch 1's validation left).
    vocabulary, num_steps, batch = 16, 6, 8
    rng = np.random.default_rng(1)
    windows = (rng.integers(0, vocabulary, size=(64, 1)) + np.arange(num_steps + 1)) % vocabulary
    inputs, targets = windows[:, :-1].astype("int32"), windows[:, 1:].astype("int32")
    keras.utils.set_random_seed(0)
    tokens = keras.Input(batch_shape=(batch, num_steps), dtype="int32")
    x = keras.layers.Embedding(vocabulary, 8, name="embedding")(tokens)
    x = keras.layers.LSTM(12, return_sequences=True, stateful=True, name="lstm")(x)
    model = tfgrow.grow(keras.Model(tokens, keras.layers.Dense(vocabulary)(x)))
    model.compile(
        keras.optimizers.SGD(1.0),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    probe = _StateProbe(model.source.get_layer("lstm"))
    growing = GrowingCallback(Budget(target=0.5, lambda_channel_base=50.0), log_every_steps=0)
    model.fit(
        inputs,
        targets,
        batch_size=batch,
        epochs=2,
        shuffle=False,
        validation_data=(inputs[:16], targets[:16]),
        callbacks=[growing, probe],
        verbose=0,
    )
    events = [event for event, _ in probe.seen]
    assert events == ["epoch", "trained", "evaluation"] * 2
    for event, magnitude in probe.seen:
        assert (magnitude > 0.0) == (event == "trained"), probe.seen
    assert model.channel_groups["lstm"].counters.numpy().sum() > 0
    widths, _ = model.architecture()
    assert widths["lstm"] > 1
    plain = plain_model(model)  # stateless: equals the grown model from a fresh state
    assert not plain.get_layer("lstm").stateful
    reset_states(model)
    np.testing.assert_allclose(plain(inputs[:batch]), model(inputs[:batch]), atol=1e-5)


def test_a_batch_other_than_the_stateful_models_is_refused_with_the_fix():
    # Keras' own errors were a shape mismatch inside the LSTM's scan (16 vs 8) and an assertion
    # in the loss (a last batch of 4).
    vocabulary, num_steps, batch = 16, 6, 8
    tokens = keras.Input(batch_shape=(batch, num_steps), dtype="int32")
    x = keras.layers.Embedding(vocabulary, 4)(tokens)
    x = keras.layers.LSTM(4, return_sequences=True, stateful=True)(x)
    model = tfgrow.grow(keras.Model(tokens, keras.layers.Dense(vocabulary)(x)))
    model.compile(
        keras.optimizers.SGD(1.0),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    windows = np.zeros((20, num_steps), np.int32)
    with pytest.raises(ValueError, match="Expected batches of 8 rows.*Received: a batch of 16"):
        model(windows[:16])
    growing = GrowingCallback(Budget(target=0.5), log_every_steps=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="fit\\(..., batch_size=8\\)"):
        model.fit(windows, windows, batch_size=8, callbacks=[growing], verbose=0)  # 8, 8, 4
