r"""How well the latency table predicts whole training steps of stock Keras models (issue 14).

Builds the `LatencyTable` of a network (the plain Keras ResNet-20 on 28x28x1 by default, grown
by `tfgrow.grow`), calibrates it as a latency-budget run does (full and smallest network), then
draws `--architectures` random architectures (every channel group at a uniform random multiple
of the granularity up to its full width: the widths the growing engine computes with
`tfgrow.train.channel_multiple` 8; `--exact_widths`: any width in [1, full]), builds each as a
stock Keras model (`tfgrow.latency.stock_model_at_widths`) and times its training step
(`tfgrow.timing.stock_step`) interleaved with the full network's. Prints per architecture:

  measured    the median step, in ms;
  predicted   the table's prediction, in ms;
  error       predicted / measured - 1 (the issue's target: within 15%);
  fraction    measured / full step (both in the same rounds) and the table's predicted fraction,
              which is what the budget uses: load that drifts during the run moves both steps
              of a round alike, so this error is the robust one on a shared machine.

Usage:
  python -m benchmarks.latency_table [--architectures=10] [--batch_size=128] [--json=PATH]
"""

import json

import numpy as np
from absl import app, flags

flags.DEFINE_integer("architectures", 10, "Random architectures to check.")
flags.DEFINE_integer("batch_size", 128, "Batch size of the steps and of the table.")
flags.DEFINE_integer("rounds", 5, "Interleaved rounds per architecture (median).")
flags.DEFINE_integer("steps", 3, "Steps per round.")
flags.DEFINE_integer("seed", 0, "Seed of the random architectures.")
flags.DEFINE_bool(
    "exact_widths",
    False,
    "Draw any width in [1, full], not multiples of the granularity (the table rounds up).",
)
flags.DEFINE_string("cache_dir", None, "Latency cache directory (default: tfgrow's).")
flags.DEFINE_string("json", None, "Also write the figures to this JSON file.")
FLAGS = flags.FLAGS

TARGET = 0.15


def draw_width(rng, size, granularity):
    """A random width of a group of `size` channels (see --exact_widths)."""
    if FLAGS.exact_widths or size <= granularity:
        return int(rng.integers(1, size + 1))
    choices = sorted({*range(granularity, size, granularity), size})
    return int(rng.choice(choices))


def main(argv):
    del argv
    import tensorflow as tf

    import tfgrow
    from tfgrow.latency import LatencyTable, latency_settings, stock_model_at_widths
    from tfgrow.models import keras_resnet_cifar
    from tfgrow.timing import stock_step, time_interleaved

    network = tfgrow.grow(keras_resnet_cifar((28, 28, 1), 10), grow_layers=False)
    rng = np.random.default_rng(FLAGS.seed)
    images = rng.normal(size=(FLAGS.batch_size, 28, 28, 1)).astype(np.float32)
    labels = rng.integers(0, 10, FLAGS.batch_size).astype(np.int32)
    batch = (tf.constant(images), tf.constant(labels))
    settings = latency_settings(cache_dir=FLAGS.cache_dir)
    table = LatencyTable(network.layer_costs, FLAGS.batch_size, settings=settings)
    scale, overhead = table.calibrate(network, batch)
    print(
        f"table: {len(table.layers)} layers, {table.measured} entries measured "
        f"(cache {table.cache_path}); scale {scale:.3f}, overhead {1000 * overhead:.1f} ms"
    )
    full = table.full_widths()
    full_step = stock_step(stock_model_at_widths(network, full))
    rows = []
    for index in range(FLAGS.architectures):
        granularity = settings["granularity"]
        widths = {name: draw_width(rng, size, granularity) for name, size in full.items()}
        steps = {"arch": stock_step(stock_model_at_widths(network, widths)), "full": full_step}
        seconds = time_interleaved(steps, batch, FLAGS.rounds, FLAGS.steps)
        predicted = float(table.predict(widths))
        row = {
            "widths": widths,
            "measured_ms": 1000 * seconds["arch"],
            "full_measured_ms": 1000 * seconds["full"],
            "predicted_ms": 1000 * predicted,
            "error": predicted / seconds["arch"] - 1.0,
            "measured_fraction": seconds["arch"] / seconds["full"],
            "predicted_fraction": float(table.fraction(widths)),
        }
        row["fraction_error"] = row["predicted_fraction"] / row["measured_fraction"] - 1.0
        rows.append(row)
        print(
            f"arch {index}: measured {row['measured_ms']:6.1f} ms  predicted "
            f"{row['predicted_ms']:6.1f} ms  error {100 * row['error']:+5.1f}%  fraction "
            f"measured {row['measured_fraction']:.3f} predicted {row['predicted_fraction']:.3f}"
            f" ({100 * row['fraction_error']:+5.1f}%)",
            flush=True,
        )
    errors = np.abs([row["error"] for row in rows])
    fraction_errors = np.abs([row["fraction_error"] for row in rows])
    result = {
        "batch_size": FLAGS.batch_size,
        "exact_widths": FLAGS.exact_widths,
        "scale": scale,
        "overhead_ms": 1000 * overhead,
        "calibration": table.calibration,
        "rows": rows,
        "max_abs_error": float(errors.max()),
        "mean_abs_error": float(errors.mean()),
        "max_abs_fraction_error": float(fraction_errors.max()),
        "mean_abs_fraction_error": float(fraction_errors.mean()),
        "target": TARGET,
    }
    print(
        f"step time: mean |error| {100 * result['mean_abs_error']:.1f}%, max "
        f"{100 * result['max_abs_error']:.1f}%; fraction of the full step: mean |error| "
        f"{100 * result['mean_abs_fraction_error']:.1f}%, max "
        f"{100 * result['max_abs_fraction_error']:.1f}% (target: within {100 * TARGET:.0f}%)"
    )
    if FLAGS.json:
        with open(FLAGS.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    app.run(main)
