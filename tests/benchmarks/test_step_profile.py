"""The step profile sums the ops a step runs, per step, and leaves out the calls that hold them."""

import tensorflow as tf

from benchmarks import step_profile


def test_op_times_count_each_op_once_per_step_and_skip_function_calls():
    x = tf.random.normal([256, 256])

    def step(x):
        return tf.reduce_sum(tf.matmul(x, x) * 3.0)

    profile = step_profile.op_times(step, x, steps=4)
    matmuls = [figures for op, figures in profile.items() if "MatMul" in op]
    assert len(matmuls) == 1, profile
    (time, calls) = matmuls[0]
    assert calls == 1.0 and time > 0.0  # one matmul per step, over 4 traced steps
    assert not any(op.startswith("__inference") or op in step_profile.CONTAINERS for op in profile)
