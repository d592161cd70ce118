"""What a growing run reports: TensorBoard scalars, the console's values and `summary.json`.

`tfgrow.train.growing_run.GrowingRun` calls these once per logging interval (`log_step`,
`log_architecture`), once per epoch (`log_epoch`) and at the end (`summary`). Costs are counted
by the one counter, `tfgrow.cost`, on the network's `layer_costs`.
"""

import math

import tensorflow as tf

from tfgrow import cost as cost_lib
from tfgrow.plots import scalars as plot_scalars


def architecture_costs(model):
    widths, blocks = model.architecture()
    params, flops = cost_lib.count(model.layer_costs, widths, blocks)
    return widths, blocks, int(params), int(flops)


def step_values(results):
    count = max(results["count"], 1.0)
    return {"loss": results["loss_sum"] / count, "train_acc": results["correct"] / count}


def log_step(writer, model, trainer, budget, step, results):
    """Writes a step's TensorBoard scalars; returns the console's extra values."""
    loss, accuracy = step_values(results).values()
    widths, blocks, params, _ = architecture_costs(model)
    fraction = budget.current_fraction(
        model.layer_costs, widths, blocks, getattr(model, "latency_table", None)
    )
    savings = trainer.read("train_flops_full") / max(trainer.read("train_flops"), 1.0)
    with writer.as_default(step=step):
        tf.summary.scalar("train/loss", loss)
        tf.summary.scalar("train/accuracy", accuracy)
        tf.summary.scalar("budget/fraction", fraction)
        tf.summary.scalar("budget/lambda_channel", trainer.read("lambda_channel"))
        tf.summary.scalar("budget/lambda_layer", trainer.read("lambda_layer"))
        tf.summary.scalar("cost/params", params)
        tf.summary.scalar("cost/train_flops", trainer.read("train_flops"))
        for name, width in widths.items():
            tf.summary.scalar(f"active/{name}", width)
        for name, on in blocks.items():
            tf.summary.scalar(f"blocks/{name}", on)
    return {
        "budget_fraction": f"{float(fraction):.3f}",
        "lambda_c": float(trainer.read("lambda_channel")),
        "savings": f"{savings:.2f}x",
    }


def log_architecture(writer, model, trainer, budget, step):
    """The architecture scalars the plots read (`tfgrow/plots/scalars.py`)."""
    epoch = step / trainer.steps_per_epoch
    scalars = plot_scalars.architecture_scalars(model, trainer.temperature, epoch, budget.target)
    plot_scalars.write_scalars(writer, step, scalars)


def log_epoch(writer, model, trainer, totals, evaluation):
    """Writes an epoch's TensorBoard scalars; returns the console's values."""
    count = max(totals["count"], 1.0)
    widths, blocks, params, flops = architecture_costs(model)
    full_params, full_flops = model.full_cost()
    with writer.as_default(step=int(trainer.read("step"))):
        tf.summary.scalar("eval/accuracy", evaluation["accuracy"])
        tf.summary.scalar("eval/loss", evaluation["loss"])
        if "perplexity" in evaluation:
            tf.summary.scalar("eval/perplexity", evaluation["perplexity"])
        tf.summary.scalar("cost/params_fraction", params / full_params)
        tf.summary.scalar("cost/flops_fraction", flops / full_flops)
    writer.flush()
    savings = trainer.read("train_flops_full") / max(trainer.read("train_flops"), 1.0)
    perplexities = {}
    if "perplexity" in evaluation:  # language models
        perplexities = {
            "train_ppl": f"{perplexity(totals['loss_sum'] / count):.2f}",
            "eval_ppl": f"{evaluation['perplexity']:.2f}",
        }
    return {
        "train_loss": totals["loss_sum"] / count,
        "train_acc": totals["correct"] / count,
        **perplexities,
        "eval_acc": float(evaluation["accuracy"]),
        "params": f"{params} ({100.0 * params / full_params:.1f}%)",
        "flops": f"{100.0 * flops / full_flops:.1f}%",
        "blocks": f"{sum(blocks.values())}/{len(blocks)}",
        "savings": f"{savings:.2f}x",
    }


def summary(model, trainer, budget, run, evaluation, wall_time):
    """summary.json: the contract keys (README.md, "What a run writes") and a few more."""
    widths, blocks, params, flops = architecture_costs(model)
    full_params, full_flops = model.full_cost()
    all_blocks = {name: 1 for name in model.all_block_names()}
    all_blocks.update(blocks)
    train_flops = trainer.read("train_flops")
    train_flops_full = trainer.read("train_flops_full")
    return {
        **run,
        "model": model.name,
        "steps": int(trainer.read("step")),
        "eval_accuracy": float(evaluation.get("accuracy", float("nan"))),
        "eval_loss": float(evaluation.get("loss", float("nan"))),
        **({"eval_perplexity": evaluation["perplexity"]} if "perplexity" in evaluation else {}),
        "params": params,
        "params_full": int(full_params),
        "flops": flops,
        "flops_full": int(full_flops),
        "train_flops": train_flops,
        "train_flops_full": train_flops_full,
        "train_cost_savings": train_flops_full / train_flops if train_flops else float("nan"),
        "wall_time_s": wall_time,
        "architecture": widths,
        "blocks": all_blocks,
        "budget_target": budget.target if model.growing else None,
        "budget_metric": budget.metric,
        "num_compiles": trainer.num_traces,
        # The random baseline's fixed p (tfgrow.random_probability); None for the other methods.
        "random_probability": getattr(model, "fixed_probability", None),
    }


def perplexity(loss):
    """exp(mean cross-entropy per token in nats); inf when it overflows (a diverged run)."""
    return math.inf if loss > 709.0 else math.exp(loss)


def test_summary(evaluation):
    """`summary.json`'s keys of a language model's test split: accuracy, loss, perplexity."""
    return {
        "test_accuracy": float(evaluation["accuracy"]),
        "test_loss": float(evaluation["loss"]),
        "test_perplexity": float(evaluation["perplexity"]),
    }
