"""Architecture plots of growing and MorphNet runs (the growing paper's Figures 8-14).

- `events`: read the scalars a run logged to TensorBoard.
- `scalars`: the architecture scalars a growing run logs for the plots (active fraction and mean
  temperature per group, per-stage fractions and blocks on).
- `growing`, `morphnet`: draw the figures (matplotlib, Agg backend).
- `run`: redraw every figure of a run directory, write PNGs, log TensorBoard images.

Nothing here imports the training loop: the loop calls in, and `launchers/plot.py` works on any
finished or running run from its files alone.
"""
