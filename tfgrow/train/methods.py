"""The methods a run may train with (`tfgrow.train.method`), in one place.

`tfgrow.train.loop.train` runs the growing ones (`tfgrow.train.growing_run`) and hands the
others to their runner: `tfgrow.morphnet.run` for the MorphNet methods,
`tfgrow.baselines.<method>` for the plain baselines (METHOD.md §1.9).
"""

MORPHNET_METHODS = ("morphnet", "width_multiplier")  # run by tfgrow.morphnet.run
# Baselines on stock Keras models, each run by tfgrow.baselines.<method> (METHOD.md §1.9).
PLAIN_BASELINES = ("uniform", "direct_design", "l1_pruning", "magnitude_pruning")
# "random" is the growing trainer with fixed probabilities (tfgrow.baselines.random_sampling).
METHODS = ("grow", "full", "random") + MORPHNET_METHODS + PLAIN_BASELINES
# Methods whose model_fn builds a tfgrow GrowingNetwork (direct design rebuilds its source's).
NETWORK_METHODS = ("grow", "full", "random", "direct_design")
