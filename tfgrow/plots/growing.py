"""Figures of a growing run (the paper's Figures 8-14) from its logged scalars.

Every drawing function takes the `events.read_scalars` dict and returns (figure, panel titles),
so a caller (and a test) can check which panels were drawn. x axes are training steps.
"""

import matplotlib

matplotlib.use("Agg")  # no display: runs on servers and in tests

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from tfgrow.plots.scalars import stage_of  # noqa: E402

# Above this many lines a panel's legend names stages (colours), not every group.
MAX_LEGEND_ENTRIES = 12
TITLES = {
    "channels": ("Active channel ratio per group", "Active channel ratio per stage"),
    "blocks": ("Blocks on per stage",),
    "temperature": ("Mean temperature per group over training", "Mean temperature per group, last"),
    "budget": ("Budget fraction", "Penalty weights lambda"),
}


def draw_growing_figures(scalars):
    """All figures the scalars allow.

    Args:
        scalars: dict tag -> (steps, values), from `events.read_scalars(model_dir/train)`.

    Returns:
        dict figure name ("channels", "blocks", "temperature", "budget") -> (figure, titles).
        "blocks" is drawn only for runs that grow layers (tags `blocks/<block>` present), the
        others only when their scalars were logged.
    """
    figures = {}
    if _series(scalars, "active_fraction/"):
        figures["channels"] = _draw_channels(scalars)
    if _series(scalars, "blocks/") and _series(scalars, "stage_blocks/"):
        figures["blocks"] = _draw_blocks(scalars)
    if _series(scalars, "temperature/"):
        figures["temperature"] = _draw_temperature(scalars)
    if "budget/fraction" in scalars:
        figures["budget"] = _draw_budget(scalars)
    return figures


def _series(scalars, prefix):
    """name (tag without prefix) -> (steps, values) of the tags under `prefix`, by name."""
    return {t[len(prefix) :]: scalars[t] for t in sorted(scalars) if t.startswith(prefix)}


def _stage_colours(names):
    stages = sorted({stage_of(n) for n in names})
    palette = plt.get_cmap("tab10")
    return {stage: palette(i % 10) for i, stage in enumerate(stages)}


def _plot_groups(axis, series):
    """One line per group, coloured by stage; the legend names groups or stages."""
    colours = _stage_colours(series)
    many = len(series) > MAX_LEGEND_ENTRIES
    labelled = set()
    for name, (steps, values) in series.items():
        stage = stage_of(name)
        label = name if not many else (stage if stage not in labelled else None)
        labelled.add(stage)
        axis.plot(steps, values, color=colours[stage], alpha=0.6 if many else 0.9, label=label)
    axis.legend(fontsize=6, ncol=2 if len(series) > 6 and not many else 1)


def _figure(num_panels, titles):
    figure, axes = plt.subplots(1, num_panels, figsize=(6 * num_panels, 4), squeeze=False)
    for axis, title in zip(axes[0], titles):
        axis.set_title(title)
        axis.set_xlabel("training step")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return figure, list(axes[0])


def _draw_channels(scalars):
    titles = TITLES["channels"]
    figure, (per_group, per_stage) = _figure(2, titles)
    _plot_groups(per_group, _series(scalars, "active_fraction/"))
    _plot_groups(per_stage, _series(scalars, "stage_fraction/"))
    for axis in (per_group, per_stage):
        axis.set_ylim(0.0, 1.05)
        axis.set_ylabel("active / maximal channels of H(s)")
    figure.tight_layout()
    return figure, list(titles)


def _draw_blocks(scalars):
    titles = TITLES["blocks"]
    figure, (axis,) = _figure(1, titles)
    _plot_groups(axis, _series(scalars, "stage_blocks/"))
    axis.set_ylabel("blocks of H(s)")
    axis.set_ylim(bottom=0)
    figure.tight_layout()
    return figure, list(titles)


def _draw_temperature(scalars):
    titles = TITLES["temperature"]
    figure, (over_time, last) = _figure(2, titles)
    series = _series(scalars, "temperature/")
    _plot_groups(over_time, series)
    over_time.set_yscale("log")
    over_time.set_ylabel("mean beta")
    names = list(series)
    colours = _stage_colours(names)
    last.bar(
        np.arange(len(names)),
        [series[n][1][-1] for n in names],
        color=[colours[stage_of(n)] for n in names],
    )
    last.set_xticks(np.arange(len(names)), names, rotation=90, fontsize=6)
    last.set_xlabel("")
    last.set_yscale("log")
    last.set_ylabel(f"mean beta at step {max(s[0][-1] for s in series.values())}")
    figure.tight_layout()
    return figure, list(titles)


def _draw_budget(scalars):
    titles = TITLES["budget"]
    figure, (fraction, lambdas) = _figure(2, titles)
    steps, values = scalars["budget/fraction"]
    fraction.plot(steps, values, label="budget fraction of H(s)")
    for tag, label in (("cost/params_fraction", "params"), ("cost/flops_fraction", "FLOPs")):
        if tag in scalars:
            fraction.plot(*scalars[tag], marker="o", markersize=3, label=f"{label} (per epoch)")
    if "budget/target" in scalars:
        fraction.axhline(scalars["budget/target"][1][-1], color="k", linestyle="--", label="target")
    fraction.set_ylabel("fraction of the full network")
    fraction.legend(fontsize=7)
    for tag, label in (("budget/lambda_channel", "lambda_c"), ("budget/lambda_layer", "lambda_l")):
        if tag in scalars:
            lambdas.plot(*scalars[tag], label=label)
    lambdas.axhline(0.0, color="k", linewidth=0.5)
    lambdas.set_ylabel("penalty weight")
    lambdas.legend(fontsize=7)
    figure.tight_layout()
    return figure, list(titles)
