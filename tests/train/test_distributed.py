"""MirroredStrategy over two logical CPUs trains exactly like one device (same seed, same batch):
a Keras ResNet-20 grown by `tfgrow.grow` (channels and block gates) under the growing trainer.

Runs in a subprocess: splitting the CPU into logical devices must happen before TensorFlow
initialises, which the rest of the test session has already done.
"""

import textwrap

from tests.fixtures.processes import run_script

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf
    import tfgrow
    from tfgrow.budget import Budget
    from tfgrow.masks import Temperature
    from tfgrow.models import keras_resnet_cifar
    from tfgrow.train.strategy import make_strategy
    from tfgrow.train.trainer import Trainer

    mirrored = make_strategy("mirrored", num_cpu_devices=2)
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    rng = np.random.default_rng(0)
    images = rng.normal(size=(16, 8, 8, 1)).astype("float32")
    labels = rng.integers(0, 3, 16).astype("int32")

    def build():
        model = keras_resnet_cifar((8, 8, 1), 3, width_multiplier=0.25)
        return tfgrow.grow(model, grow_layers=True)

    def run(strategy):
        tf.keras.utils.set_random_seed(0)
        with strategy.scope():
            network = build()
            for group in network.group_variables().values():
                group.logits.assign(tf.fill(group.logits.shape, 0.5))
            trainer = Trainer(
                network, strategy, global_batch_size=8, steps_per_epoch=2,
                learning_rate=lambda step: 0.1, mask_learning_rate=lambda step: 0.5,
                temperature=Temperature(num_epochs=2), weight_decay=5e-4, seed=1,
                budget=Budget(target=0.3, update_steps=1, lambda_channel_base=1.0),
            )
        data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
        losses = []
        for _ in range(2):
            for batch in strategy.experimental_distribute_dataset(data):
                losses.append(float(trainer.train_step(batch)["loss_sum"]))
        weights = [tf.convert_to_tensor(v).numpy() for v in network.weights]
        return network.architecture(), weights, losses, trainer.read("train_flops")

    arch_one, weights_one, losses_one, flops_one = run(one)
    arch_two, weights_two, losses_two, flops_two = run(mirrored)
    assert mirrored.num_replicas_in_sync == 2
    assert arch_one == arch_two, (arch_one, arch_two)
    np.testing.assert_allclose(losses_one, losses_two, rtol=1e-4)
    assert flops_one == flops_two
    for a, b in zip(weights_one, weights_two):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    print("MIRRORED_OK", len(weights_one))
    """
)


def test_mirrored_on_two_cpus_matches_one_device():
    result = run_script(SCRIPT, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "MIRRORED_OK" in result.stdout
