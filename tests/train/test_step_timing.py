"""tfgrow/train/step_timing.py: what is timed (H(s) and the full network), and the stock step."""

import json
import time

import keras
import numpy as np
import tensorflow as tf

import tfgrow
from tests.fixtures import graphs
from tests.fixtures.processes import check_tiny_run_outputs, launch
from tfgrow import cost as cost_lib
from tfgrow.graph.counting import count_model
from tfgrow.masks import Temperature
from tfgrow.timing import stock_step, time_interleaved
from tfgrow.train import step_timing


def _grown_residual():
    network = tfgrow.grow(graphs.residual_add(), grow_layers=False)
    # H(s): 1 of the 4 channels of "a" (and of its residual tie "b").
    for group in network.channel_groups.values():
        logits = np.full(group.size, -3.0, np.float32)
        logits[0] = 3.0
        group.logits.assign(logits)
    return network


def _batch(num_classes=3):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(8, *graphs.INPUT_SHAPE)).astype(np.float32)
    return tf.constant(images), tf.constant(rng.integers(0, num_classes, 8).astype(np.int32))


def test_time_interleaved_runs_every_function_and_reports_medians():
    calls = {"slow": 0, "fast": 0}

    def make(name, seconds):
        def step(batch):
            calls[name] += 1
            time.sleep(seconds)
            return tf.constant(0.0)

        return step

    seconds = time_interleaved(
        {"slow": make("slow", 0.03), "fast": make("fast", 0.003)}, None, 3, 2, warmup=1
    )
    assert calls == {"slow": 1 + 3 * 2, "fast": 1 + 3 * 2}
    assert seconds["slow"] >= 0.03 and seconds["slow"] > 2 * seconds["fast"]


def test_stock_step_is_one_momentum_sgd_step_with_weight_decay():
    """First step (velocity 0): w <- w - lr (g + wd w), g the gradient of the mean loss."""
    model = graphs.residual_add()
    images, labels = _batch()
    before = [v.numpy() for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        logits = model(images, training=True)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    gradients = tape.gradient(loss, model.trainable_variables)
    # The BN moving statistics of the tape's forward pass moved; put them back.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(tf.zeros_like(layer.moving_mean))
            layer.moving_variance.assign(tf.ones_like(layer.moving_variance))
    step = stock_step(model, learning_rate=0.1)
    step_loss = float(step((images, labels)))
    assert np.isclose(step_loss, float(loss), rtol=1e-5)
    for old, gradient, variable in zip(before, gradients, model.trainable_variables):
        expected = old - 0.1 * (gradient.numpy() + 5e-4 * old)
        np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_the_final_model_is_h_of_s_and_the_full_model_the_source():
    network = _grown_residual()
    temperature = Temperature(num_epochs=1)
    models = step_timing.architecture_models(network, temperature, 1.0)
    assert count_model(models["full"]) == count_model(network.source)
    widths, blocks = network.architecture()
    params, flops = cost_lib.count(network.layer_costs, widths, blocks)
    assert count_model(models["final"]) == (params, flops)
    assert params < count_model(models["full"])[0]
    assert models["final"].get_layer("a").kernel.shape[-1] == 1
    times = step_timing.architecture_step_times(network, _batch(), temperature, 1.0, 1, 1)
    assert times["step_time_ratio"] == times["step_time_final_s"] / times["step_time_full_s"]


def test_a_full_network_is_timed_once_with_ratio_one():
    network = tfgrow.grow(graphs.residual_add(), grow_layers=False, growing=False)
    times = step_timing.architecture_step_times(
        network, _batch(), Temperature(num_epochs=1), 1.0, 1, 1
    )
    assert times["step_time_ratio"] == 1.0
    assert times["step_time_final_s"] == times["step_time_full_s"] > 0


def test_a_launcher_run_reports_its_step_times(tmp_path):
    model_dir = tmp_path / "run"
    result = launch(
        model_dir,
        "configs/experiments/fashion_mnist_resnet20_grow.gin",
        "configs/tiny.gin",
        bindings=["tfgrow.train.step_timing_steps=1"],
    )
    check_tiny_run_outputs(result, model_dir)  # checks the step_time_* keys and the console
    summary = json.loads((model_dir / "summary.json").read_text())
    assert 0 < summary["step_time_ratio"] < 1  # the seed network (one channel a group)
