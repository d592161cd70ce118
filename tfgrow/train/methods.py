"""The methods a run may train with (`tfgrow.train.method`), in one place.

- "grow": METHOD.md §1; "full": the same network at full width, no masks;
- "morphnet": METHOD.md §2, settings in `tfgrow.MorphNet`, on a plain Keras functional model;
  "width_multiplier": its uniform baseline;
- the baselines of METHOD.md §1.9: "random" (growing with fixed probabilities), "uniform",
  "direct_design", "l1_pruning", "magnitude_pruning" (`tfgrow/baselines/`).

The MorphNet methods and the plain baselines use `train`'s arguments up to data loading and the
strategy; the growing settings do not apply to them.

`tfgrow.train.loop.train` runs the growing ones (`tfgrow.train.growing_run`) and hands the
others to their runner: `tfgrow.morphnet.run` for the MorphNet methods,
`tfgrow.baselines.<method>` for the plain baselines (METHOD.md §1.9).
"""

MORPHNET_METHODS = ("morphnet", "width_multiplier")  # run by tfgrow.morphnet.run
# Baselines on stock Keras models, each run by tfgrow.baselines.<method> (METHOD.md §1.9).
PLAIN_BASELINES = ("uniform", "direct_design", "l1_pruning", "magnitude_pruning")
# "random" is the growing trainer with fixed probabilities (tfgrow.baselines.random_sampling).
# Methods tfgrow.train.growing_run runs (the settings of the growing trainer apply to them only).
GROWING_RUN_METHODS = ("grow", "full", "random")
METHODS = GROWING_RUN_METHODS + MORPHNET_METHODS + PLAIN_BASELINES
# Methods that train masked structures (growing=True): export rebuilds their network at H(s).
GROWING_METHODS = ("grow", "random")
# Methods whose model_fn builds a growing network, tfgrow.grow's GrowingModel (direct design
# rebuilds its source's).
NETWORK_METHODS = ("grow", "full", "random", "direct_design")
