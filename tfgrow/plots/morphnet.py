"""Figures of a MorphNet run: learned, expanded and uniform widths per layer.

Read from the run's files: `summary.json` (its `morphnet.iterations` hold each iteration's learned
and expanded structure; `morphnet.seed_widths` and `morphnet.uniform_widths` the seed and the
uniform width multiplier at the same target) and, while the run still shrinks,
`structure_iter<i>.json` (the alive widths after the latest shrink epoch).
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

TITLE = "Iteration {}: widths per layer"
RUNNING_TITLE = "Iteration {}: learned widths per layer (shrinking)"


def draw_morphnet_figures(summary, structures):
    """The widths figure of a MorphNet run.

    Args:
        summary: the run's summary.json as a dict, or None while it runs.
        structures: dict iteration -> {layer: width} from `structure_iter<i>.json` files.

    Returns:
        dict "morphnet_widths" -> (figure, panel titles); {} when there is nothing to draw yet.
    """
    panels = []  # (title, {label: {layer: width}})
    morphnet = (summary or {}).get("morphnet") or {}
    for record in morphnet.get("iterations", []):
        bars = {}
        if morphnet.get("seed_widths"):
            bars["seed"] = morphnet["seed_widths"]
        bars["learned"] = record["learned_widths"]
        bars[f"expanded (x{record['multiplier']:.3f})"] = record["expanded_widths"]
        if morphnet.get("uniform_widths"):
            multiplier = morphnet.get("uniform_multiplier", float("nan"))
            bars[f"uniform (x{multiplier:.3f})"] = morphnet["uniform_widths"]
        panels.append((TITLE.format(record["iteration"]), bars))
    done = {record["iteration"] for record in morphnet.get("iterations", [])}
    for iteration in sorted(set(structures) - done):
        panels.append((RUNNING_TITLE.format(iteration), {"learned": structures[iteration]}))
    if not panels and summary and summary.get("method") == "width_multiplier":
        panels.append(
            (
                "Uniform width multiplier: widths per layer",
                {
                    f"uniform (x{summary.get('width_multiplier', float('nan')):.3f})": summary[
                        "architecture"
                    ]
                },
            )
        )
    if not panels:
        return {}
    figure, axes = plt.subplots(len(panels), 1, figsize=(12, 3.5 * len(panels)), squeeze=False)
    for axis, (title, bars) in zip(axes[:, 0], panels):
        _grouped_bars(axis, bars)
        axis.set_title(title)
    figure.tight_layout()
    return {"morphnet_widths": (figure, [title for title, _ in panels])}


def _grouped_bars(axis, bars):
    """One group of bars per layer (in the first structure's order), one colour per label."""
    layers = list(next(iter(bars.values())))
    for other in bars.values():
        layers += [name for name in other if name not in layers]
    width = 0.8 / len(bars)
    positions = np.arange(len(layers))
    for index, (label, widths) in enumerate(bars.items()):
        values = [widths.get(name, 0) for name in layers]
        axis.bar(positions + (index - (len(bars) - 1) / 2) * width, values, width, label=label)
    axis.set_xticks(positions, layers, rotation=90, fontsize=6)
    axis.set_ylabel("output channels")
    axis.legend(fontsize=7)
    axis.grid(axis="y", alpha=0.3)
