r"""Training-step time under `mixed_bfloat16` against float32, interleaved in one process.

For ResNet-20 on 28x28x1 inputs (the main job's network), batch 128, this times one training step
of each network below in float32 and in `mixed_bfloat16` (README, "Mixed precision"), rounds
interleaved, median over `--repeats` rounds of `--steps` steps:

  stock  the stock Keras ResNet-20 (`tfgrow.models.keras_resnet_cifar`) rebuilt at the sampled
         widths, the step of `benchmarks.step_time.stock_step` (at full width the issue's
         reference: 1.9x);
  graph  that model grown by `tfgrow.grow` (channels only), the launcher's `Trainer` step at
         every group's active fraction `--fractions`.

and prints float32 ms / bfloat16 ms per row: the speed-up of the mixed policy. Masks are
deterministic (`step_time.set_fraction`), so both policies compute exactly the same widths.

Usage:
  python -m benchmarks.mixed_precision [--fractions=1.0,0.5] [--json=runs/mixed_precision.json]
"""

from absl import app, flags

from benchmarks import step_time

FLAGS = flags.FLAGS
POLICIES = ("float32", "mixed_bfloat16")
INPUT_SHAPE, NUM_CLASSES = (28, 28, 1), 10


def networks(policy, fraction):
    """name -> step function of each network, built under `policy`, at `fraction`."""
    import tfgrow
    from tfgrow import models
    from tfgrow.precision import dtype_policy_scope

    with dtype_policy_scope(policy):
        stock = models.keras_resnet_cifar(INPUT_SHAPE, NUM_CLASSES)
        graph = tfgrow.grow(
            models.keras_resnet_cifar(INPUT_SHAPE, NUM_CLASSES),
            grow_layers=False,
            channel_multiple=step_time.channel_multiple(),
        )
    widths = step_time.set_fraction(graph, fraction)
    if fraction != 1.0:  # stock Keras at exactly the sampled widths, in the same policy
        stock = step_time.stock_model(graph, widths)
    return {
        "stock": step_time.stock_step(stock, jit_compile=False),
        "graph": step_time.growing_step(graph, jit_compile=False),
    }


def time_fraction(fraction):
    """Rows (one per network) of float32 and bfloat16 step times at `fraction`."""
    steps = {}
    for policy in POLICIES:
        for name, step in networks(policy, fraction).items():
            steps[(name, policy)] = step
    batch = step_time.batch_for("resnet20")
    seconds = step_time.time_interleaved(steps, batch)
    rows = []
    for name in dict.fromkeys(name for name, _ in steps):
        float32, bfloat16 = (seconds[(name, policy)] for policy in POLICIES)
        row = {
            "network": name,
            "fraction": fraction,
            "float32_ms": 1000.0 * float32,
            "mixed_bfloat16_ms": 1000.0 * bfloat16,
            "speedup": float32 / bfloat16,
        }
        print(
            f"{name:>5} fraction {fraction:.2f}  float32 {row['float32_ms']:6.1f} ms  "
            f"mixed_bfloat16 {row['mixed_bfloat16_ms']:6.1f} ms  speed-up {row['speedup']:.2f}x",
            flush=True,
        )
        rows.append(row)
    return rows


def main(argv):
    del argv
    rows = []
    for fraction in sorted((float(f) for f in FLAGS.fractions), reverse=True):
        rows += time_fraction(fraction)
    if FLAGS.json:
        payload = {
            "batch_size": FLAGS.batch_size,
            "channel_multiple": step_time.channel_multiple(),
            "repeats": FLAGS.repeats,
            "steps": FLAGS.steps,
            "rows": rows,
        }
        step_time.write_json(FLAGS.json, payload)


if __name__ == "__main__":
    app.run(main)
