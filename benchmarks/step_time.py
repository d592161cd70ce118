r"""Training-step time of growing models against stock Keras models of exactly the same widths.

For ResNet-20 (28x28x1, the main job's input), VGG-16-BN, MobileNetV1 and ResNet-50 (32x32x3, small
so that a row takes minutes on a 2-core CPU), plain Keras builders of `tfgrow.models` grown by
`tfgrow.grow` (channels only), and 2-layer LSTM language models (`lstm_small`: 200 units,
`lstm_medium`: 650; vocabulary 10,000, 35 steps, batch 20; embedding and LSTM units growing), at
active channel fractions 0.25, 0.5, 0.75 and 1.0 of every group, this times one training step of

  grow_ragged  the growing model's step (Trainer, exact ragged widths rounded up to
               --channel_multiple, by default the launcher's 8; the launcher's default mode);
  grow_xla     the same step compiled with XLA at the capacities the launcher would choose,
               on a ladder in multiples of --xla_channel_multiple (by default what
               configs/modes/xla.gin sets: 4);
  stock        a stock Keras functional model (Conv2D, BatchNormalization, Dense) built at the
               active widths (the plain builder's model rebuilt at those widths,
               `tfgrow.graph.slicing.build_at_widths`), trained by the same
               step (same optimiser code, same batch; the language models: plain SGD, their
               configs' recipe, momentum 0.9 and weight decay 5e-4 otherwise);
  stock_xla    that step compiled with XLA;

interleaved in one process, median over `--repeats` rounds of `--steps` steps each, and prints
the ratios issue 11 sets targets for (ragged and XLA <= 1.15 x stock at the same widths, growing
at fraction 1.0 <= 1.05 x stock full; the XLA/TPU issue's were 1.2, 1.3 and 1.15). The masks are
deterministic (logits +-30), so every step draws exactly the fraction asked for. `--memory` also
measures peak resident memory of a growing run (its sampled masks at p = 0.5) and of the stock
full-width model, each in a fresh subprocess.

Usage:
  python -m benchmarks.step_time [--models=resnet20,vgg16,mobilenet_v1,resnet50] [--json=...]
  python -m benchmarks.step_time --models=resnet20 --repeats=3 --steps=3   # quick look
  python -m benchmarks.step_time --models=mobilenet_v1,resnet50 --nomemory
  python -m benchmarks.step_time --models=resnet50 --count_ops   # graph size, no timing
"""

import json
import os
import subprocess
import sys

from absl import app, flags

from benchmarks import step_time_models as models_lib
from benchmarks.step_time_models import INPUTS, set_fraction, stock_model

flags.DEFINE_list(
    "models",
    ["resnet20", "vgg16"],
    "Models to time: resnet20, vgg16, mobilenet_v1, resnet50 (tfgrow.grow of the plain "
    "builders), lstm_small, lstm_medium (2-layer LSTM language models, batch 20).",
)
flags.DEFINE_list("fractions", ["0.25", "0.5", "0.75", "1.0"], "Active channel fractions.")
flags.DEFINE_integer("batch_size", 128, "Global batch size.")
flags.DEFINE_integer(
    "channel_multiple",
    None,
    "Round the growing model's computed widths up to this multiple (tfgrow.train.channel_multiple)."
    " Default: the launcher's default.",
)
flags.DEFINE_integer(
    "xla_channel_multiple",
    None,
    "Capacity ladder multiple of the XLA rows. Default: what configs/modes/xla.gin binds.",
)
flags.DEFINE_integer("repeats", 5, "Interleaved rounds; the median round is reported.")
flags.DEFINE_integer("steps", 5, "Steps per round.")
flags.DEFINE_bool("xla", True, "Also time the XLA mode.")
flags.DEFINE_bool("memory", True, "Also measure peak memory in subprocesses.")
flags.DEFINE_bool(
    "count_ops",
    False,
    "Instead of timing, count the graph ops of the growing (ragged) and the stock training step "
    "at each fraction: a load-independent measure of per-step overhead.",
)
flags.DEFINE_string("json", None, "Also write the figures to this JSON file.")
flags.DEFINE_string("memory_probe", None, "Internal: run one memory probe and print its RSS.")
FLAGS = flags.FLAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Issue 11's targets; issue 15 sets 1.2 for the LSTM rows (ragged, at every fraction).
TARGETS = {"ragged": 1.15, "xla": 1.15, "full": 1.05, "memory": 1.5, "ragged_lstm": 1.2}


# ---------------------------------------------------------------------------- models
def growing_model(name, multiple=None):
    """The growing model `name` at --channel_multiple (or `multiple`)."""
    return models_lib.growing_model(name, multiple or channel_multiple())


def channel_multiple():
    """--channel_multiple, or the launcher's default (`tfgrow.train.channel_multiple`)."""
    if FLAGS.channel_multiple is not None:
        return FLAGS.channel_multiple
    import inspect

    from tfgrow.train import loop

    return inspect.signature(loop.train).parameters["channel_multiple"].default


def xla_channel_multiple():
    """--xla_channel_multiple, or `tfgrow.train.channel_multiple` under configs/modes/xla.gin."""
    if FLAGS.xla_channel_multiple is not None:
        return FLAGS.xla_channel_multiple
    import gin

    import tfgrow.config  # noqa: F401  (registers tfgrow.train)

    with gin.unlock_config():
        gin.clear_config()
        gin.parse_config_file(os.path.join(REPO, "configs", "modes", "xla.gin"))
        try:
            return gin.query_parameter("tfgrow.train.channel_multiple")
        except ValueError:  # xla.gin leaves it unbound
            return channel_multiple()
        finally:
            gin.clear_config()


# ---------------------------------------------------------------------------- steps
def growing_step(network, jit_compile, global_batch_size=None, momentum=0.9, weight_decay=5e-4):
    """The growing trainer's step of `network` (at --batch_size unless given)."""
    import tensorflow as tf

    from tfgrow.budget import Budget
    from tfgrow.masks import Temperature
    from tfgrow.train.capacity import CapacityPlanner
    from tfgrow.train.trainer import Trainer

    trainer = Trainer(
        network,
        tf.distribute.get_strategy(),
        global_batch_size or FLAGS.batch_size,
        steps_per_epoch=1000,
        learning_rate=lambda step: 1e-3,
        mask_learning_rate=lambda step: 1e-3,
        temperature=Temperature(num_epochs=10),
        seed=0,
        budget=Budget(target=None),
        jit_compile=jit_compile,
        momentum=momentum,
        weight_decay=weight_decay,
    )
    planner = CapacityPlanner(network, trainer.temperature) if jit_compile else None

    def step(batch):
        capacities = planner.plan(0) if planner else None
        return trainer.train_step(batch, capacities)["loss_sum"]

    return step


def stock_step(model, jit_compile, momentum=0.9, weight_decay=5e-4):
    from tfgrow.timing import stock_step as library_stock_step

    return library_stock_step(model, jit_compile, momentum=momentum, weight_decay=weight_decay)


def batch_size(name):
    return models_lib.batch_size(name, FLAGS.batch_size)


def optimizer(name):
    return models_lib.optimizer_settings(name)


def batch_for(name):
    return models_lib.batch(name, batch_size(name))


def time_interleaved(steps, batch):
    """Median seconds per step of each named step function, rounds interleaved."""
    from tfgrow.timing import time_interleaved as library_time_interleaved

    return library_time_interleaved(steps, batch, FLAGS.repeats, FLAGS.steps)


def time_model(name):
    rows = []
    network = growing_model(name)
    batch = batch_for(name)
    grow = {"grow_ragged": growing_step(network, False, batch_size(name), **optimizer(name))}
    # The XLA rows build their own network: its capacity ladder uses the XLA mode's multiple.
    xla_network = growing_model(name, xla_channel_multiple()) if FLAGS.xla else None
    if FLAGS.xla:
        grow["grow_xla"] = growing_step(xla_network, True, batch_size(name), **optimizer(name))
    full_widths = {name: group.size for name, group in network.channel_groups.items()}
    stock_full_model = stock_model(network, full_widths)
    stock_full_step = stock_step(stock_full_model, False, **optimizer(name))
    for fraction in sorted((float(f) for f in FLAGS.fractions), reverse=True):
        widths = set_fraction(network, fraction)
        if xla_network is not None:
            set_fraction(xla_network, fraction)
        stock = stock_full_model if fraction == 1.0 else stock_model(network, widths)
        steps = dict(grow)
        steps["stock"] = (
            stock_full_step if fraction == 1.0 else stock_step(stock, False, **optimizer(name))
        )
        if FLAGS.xla:
            steps["stock_xla"] = stock_step(stock, True, **optimizer(name))
        if fraction != 1.0:
            steps["stock_full"] = stock_full_step
        seconds = time_interleaved(steps, batch)
        stock_full = seconds.get("stock_full", seconds["stock"])
        row = {
            "model": name,
            "fraction": fraction,
            **{f"{k}_ms": 1000.0 * v for k, v in seconds.items()},
            "ragged_vs_stock": seconds["grow_ragged"] / seconds["stock"],
            "ragged_vs_stock_full": seconds["grow_ragged"] / stock_full,
        }
        if FLAGS.xla:
            row["xla_vs_stock_xla"] = seconds["grow_xla"] / seconds["stock_xla"]
            row["xla_vs_stock"] = seconds["grow_xla"] / seconds["stock"]
        print_row(row)
        rows.append(row)
    return rows


def print_row(row):
    xla = (
        f"  xla/stock_xla {row['xla_vs_stock_xla']:.2f}  xla/stock {row['xla_vs_stock']:.2f}"
        if "xla_vs_stock_xla" in row
        else ""
    )
    print(
        f"{row['model']:12s} fraction {row['fraction']:.2f}  grow {row['grow_ragged_ms']:7.1f} ms"
        f"  stock {row['stock_ms']:7.1f} ms  ragged/stock {row['ragged_vs_stock']:.2f}"
        f"  ragged/stock_full {row['ragged_vs_stock_full']:.2f}{xla}",
        flush=True,
    )


# ---------------------------------------------------------------------------- graph ops
def graph_ops(function, batch):
    """Ops in the graph `function` traces for `batch`, with every function it calls (each once).

    Both branches of a `tf.cond` count, so this is the size of the step, not what one step runs.
    """
    import tensorflow as tf

    graph = tf.function(function).get_concrete_function(batch).graph
    total, seen, pending = 0, set(), [graph]
    while pending:
        graph = pending.pop()
        total += len(graph.get_operations())
        for name, nested in getattr(graph, "_functions", {}).items():
            if name not in seen and getattr(nested, "graph", None) is not None:
                seen.add(name)
                pending.append(nested.graph)
    return total


def ragged_steps_at(network, name, fraction):
    """{"grow": the growing (ragged) step, "stock": the stock step at the same widths} of
    `network` (the growing model `name`), its masks set to draw `fraction` of every group."""
    widths = set_fraction(network, fraction)
    return {
        "grow": growing_step(network, False, batch_size(name), **optimizer(name)),
        "stock": stock_step(stock_model(network, widths), False, **optimizer(name)),
    }


def count_model_ops(name):
    """Graph ops of the growing (ragged) and stock steps of `name` at every fraction."""
    rows = []
    network = growing_model(name)
    batch = batch_for(name)
    for fraction in sorted((float(f) for f in FLAGS.fractions), reverse=True):
        steps = ragged_steps_at(network, name, fraction)
        grow, stock = (graph_ops(steps[label], batch) for label in ("grow", "stock"))
        row = {"model": name, "fraction": fraction, "grow_ops": grow, "stock_ops": stock}
        print(
            f"{name:12s} fraction {fraction:.2f}  graph ops grow {grow}  stock {stock}", flush=True
        )
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------- memory
def memory_probe(kind):
    """Trains 20 steps of one model in this (fresh) process and prints its peak RSS in MiB."""
    import tensorflow as tf  # noqa: F401  (the baseline includes TensorFlow itself)

    baseline = _peak_rss_mib()
    model_name, mode = kind.split(":")
    network = growing_model(model_name)
    batch = batch_for(model_name)
    if mode == "grow":
        for group in network.channel_groups.values():
            group.logits.assign(tf.zeros_like(group.logits))  # p = 0.5 draws
        step = growing_step(network, False, batch_size(model_name), **optimizer(model_name))
    else:
        step = stock_step(
            stock_model(network, set_fraction(network, 1.0)), False, **optimizer(model_name)
        )
    for _ in range(20):
        float(step(batch))
    print(json.dumps({"peak_mib": _peak_rss_mib(), "baseline_mib": baseline}))


def _peak_rss_mib():
    """This process's peak resident memory (VmHWM; unlike ru_maxrss, exec does not inherit it)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("No VmHWM in /proc/self/status: peak memory needs Linux")


def measure_memory(name):
    figures = {}
    for mode in ("grow", "stock"):
        output = subprocess.run(
            [sys.executable, "-m", "benchmarks.step_time", f"--memory_probe={name}:{mode}"]
            + [f"--batch_size={FLAGS.batch_size}", f"--channel_multiple={channel_multiple()}"],
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        figures[mode] = json.loads(output.strip().splitlines()[-1])
    row = {
        "model": name,
        "grow_peak_mib": figures["grow"]["peak_mib"],
        "stock_full_peak_mib": figures["stock"]["peak_mib"],
        "peak_ratio": figures["grow"]["peak_mib"] / figures["stock"]["peak_mib"],
        # Above what importing TensorFlow costs.
        "training_growth_ratio": (figures["grow"]["peak_mib"] - figures["grow"]["baseline_mib"])
        / max(figures["stock"]["peak_mib"] - figures["stock"]["baseline_mib"], 1.0),
    }
    print(
        f"{name:12s} peak RSS grow {row['grow_peak_mib']:.0f} MiB  stock full "
        f"{row['stock_full_peak_mib']:.0f} MiB  ratio {row['peak_ratio']:.2f}  "
        f"(growth above import: {row['training_growth_ratio']:.2f})",
        flush=True,
    )
    return row


def main(argv):
    del argv
    if FLAGS.memory_probe:
        memory_probe(FLAGS.memory_probe)
        return
    for name in FLAGS.models:
        if name not in INPUTS:
            raise app.UsageError(f"Expected models from {sorted(INPUTS)}. Received: {name!r}")
    if FLAGS.count_ops:
        rows = [row for name in FLAGS.models for row in count_model_ops(name)]
        if FLAGS.json:
            write_json(FLAGS.json, {"batch_size": FLAGS.batch_size, "ops": rows})
        return
    rows = [row for name in FLAGS.models for row in time_model(name)]
    memory = [measure_memory(name) for name in FLAGS.models] if FLAGS.memory else []
    worst = {}
    for suffix, selected in (
        ("", [r for r in rows if r["model"] not in models_lib.LANGUAGE_MODELS]),
        ("_lstm", [r for r in rows if r["model"] in models_lib.LANGUAGE_MODELS]),
    ):
        if selected:
            worst["ragged_vs_stock" + suffix] = max(r["ragged_vs_stock"] for r in selected)
    full_rows = [r["ragged_vs_stock"] for r in rows if r["fraction"] == 1.0]
    if full_rows:
        worst["full_fraction_ragged_vs_stock_full"] = max(full_rows)
    if FLAGS.xla:
        worst["xla_vs_stock_xla"] = max(r["xla_vs_stock_xla"] for r in rows)
    if memory:
        worst["memory_peak_ratio"] = max(m["peak_ratio"] for m in memory)
    print("worst ratios:", json.dumps(worst), " targets:", json.dumps(TARGETS))
    if FLAGS.json:
        payload = {
            "batch_size": FLAGS.batch_size,
            "channel_multiple": channel_multiple(),
            "xla_channel_multiple": xla_channel_multiple() if FLAGS.xla else None,
            "repeats": FLAGS.repeats,
            "steps": FLAGS.steps,
            "rows": rows,
            "memory": memory,
            "worst": worst,
            "targets": TARGETS,
        }
        write_json(FLAGS.json, payload)


def write_json(path, payload):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)


if __name__ == "__main__":
    app.run(main)
