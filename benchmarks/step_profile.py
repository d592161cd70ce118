r"""Where a training step's time goes: op types of the growing step against the stock step.

`benchmarks.step_time` says how much slower the growing step is than a stock Keras model of the
same widths; this says which ops make the difference. For one model at one active fraction it
builds both steps exactly as `benchmarks.step_time` does (same network, masks, batch and
optimiser), traces `--steps` steps of each with `tf.profiler`, and sums the host time of every
op type over the trace (all threads, so the sums can exceed wall time on a multi-core CPU),
per step. Function-call and control-flow ops (`PartitionedCall`, `If`, `While`, ...) are left
out: they contain the ops that are counted.

Usage:
  python -m benchmarks.step_profile --model=resnet50 --fraction=0.5 --batch_size=32
  python -m benchmarks.step_profile --model=resnet50 --fraction=0.25 --json=runs/profile.json
"""

import collections
import glob
import os
import tempfile

from absl import app, flags

from benchmarks import step_time
from benchmarks.step_time_models import INPUTS

flags.DEFINE_string("model", "resnet50", "One of benchmarks.step_time's models.")
flags.DEFINE_float("fraction", 0.5, "Active channel fraction of every group.")
flags.DEFINE_integer("top", 30, "Op types printed (the largest, either step).")
FLAGS = flags.FLAGS

# Ops that only call or branch into other ops (whose time is counted on its own).
CONTAINERS = ("PartitionedCall", "StatefulPartitionedCall", "If", "StatelessIf", "While")
CONTAINERS += ("StatelessWhile", "Process", "Run")


def op_times(step, batch, steps):
    """{op type: (microseconds per step, calls per step)} of `steps` traced calls of `step`."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    function = tf.function(step)
    for _ in range(3):  # trace and warm up outside the profile
        function(batch)
    with tempfile.TemporaryDirectory() as log_dir:
        tf.profiler.experimental.start(log_dir)
        for _ in range(steps):
            function(batch)
        tf.profiler.experimental.stop()
        (path,) = glob.glob(os.path.join(log_dir, "**", "*.xplane.pb"), recursive=True)
        space = xplane_pb2.XSpace()
        with open(path, "rb") as f:
            space.ParseFromString(f.read())
    micros, calls = collections.Counter(), collections.Counter()
    for plane in space.planes:
        if "host" not in plane.name.lower():
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name:  # TF op events are named "op_name:OpType"
                    continue
                op_type = name.rsplit(":", 1)[-1].strip()
                if op_type in CONTAINERS or op_type.startswith("__inference"):
                    continue
                micros[op_type] += event.duration_ps / 1e6
                calls[op_type] += 1
    return {k: (micros[k] / steps, calls[k] / steps) for k in micros}


def main(argv):
    del argv
    if FLAGS.model not in INPUTS:
        raise app.UsageError(f"Expected a model from {sorted(INPUTS)}. Received: {FLAGS.model!r}")
    name = FLAGS.model
    steps = step_time.ragged_steps_at(step_time.growing_model(name), name, FLAGS.fraction)
    batch = step_time.batch_for(name)
    profiles = {label: op_times(step, batch, FLAGS.steps) for label, step in steps.items()}
    totals = {label: sum(t for t, _ in ops.values()) for label, ops in profiles.items()}
    print(
        f"{name} fraction {FLAGS.fraction:.2f}, batch {FLAGS.batch_size}: op time per step "
        f"(ms, summed over threads) grow {totals['grow'] / 1e3:.1f}, "
        f"stock {totals['stock'] / 1e3:.1f}"
    )
    types = set(profiles["grow"]) | set(profiles["stock"])
    largest = sorted(
        types, key=lambda k: -max(profiles[label].get(k, (0, 0))[0] for label in profiles)
    )
    for op_type in largest[: FLAGS.top]:
        cells = []
        for label in ("grow", "stock"):
            time, count = profiles[label].get(op_type, (0.0, 0))
            cells.append(f"{label} {time / 1e3:8.1f} ms ({count:5.0f} calls)")
        print(f"  {op_type:32s} " + "  ".join(cells))
    if FLAGS.json:
        payload = {
            "model": name,
            "fraction": FLAGS.fraction,
            "batch_size": FLAGS.batch_size,
            "steps": FLAGS.steps,
            "total_ms": {k: v / 1e3 for k, v in totals.items()},
            "ops_ms": {
                label: {k: round(t / 1e3, 3) for k, (t, _) in sorted(ops.items())}
                for label, ops in profiles.items()
            },
        }
        step_time.write_json(FLAGS.json, payload)


if __name__ == "__main__":
    app.run(main)
