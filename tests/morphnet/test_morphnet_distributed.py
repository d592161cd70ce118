"""A MorphNet shrink step under MirroredStrategy over two logical CPUs equals one device's.

Both halves of the batch are the same four examples, so per-replica batch-norm statistics equal
the full batch's and the two runs must agree (gradients all-reduced, regulariser counted once).
Runs in a subprocess: splitting the CPU must happen before TensorFlow initialises.
"""

import textwrap

from tests.fixtures.processes import run_script

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf
    from tests.fixtures import graphs
    from tfgrow.graph.analysis import analyze
    from tfgrow.morphnet.regularizers import GammaRegularizer
    from tfgrow.morphnet.phase import Ledger, Phase
    from tfgrow.train.strategy import make_strategy

    mirrored = make_strategy("mirrored", num_cpu_devices=2)
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    rng = np.random.default_rng(0)
    images = rng.normal(size=(4, 4, 4, 2)).astype("float32")
    labels = rng.integers(0, 3, 4).astype("int32")
    data = tf.data.Dataset.from_tensors(
        (np.concatenate([images, images]), np.concatenate([labels, labels]))
    ).repeat(2)

    def run(strategy):
        tf.keras.utils.set_random_seed(0)
        with strategy.scope():
            model = graphs.residual_add()
            regularizer = GammaRegularizer(model, analyze(model), "flops", 1e-2)
        phase = Phase("shrink", model, strategy, 8, 0.1, 0.9, 5e-4, regularizer, 1e-3,
                      Ledger(8, 1.0))
        for batch in strategy.experimental_distribute_dataset(data):
            results = phase.train_step(batch)
        return [v.numpy() for v in model.weights], float(results["penalty"])

    (weights_one, penalty_one), (weights_two, penalty_two) = run(one), run(mirrored)
    np.testing.assert_allclose(penalty_two, penalty_one, rtol=1e-5)
    for a, b in zip(weights_one, weights_two):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    print("SAME")
    """
)


def test_mirrored_shrink_steps_equal_one_device():
    result = run_script(SCRIPT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SAME" in result.stdout
