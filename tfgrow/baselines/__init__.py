"""Baselines the paper compares growing against (METHOD.md §1.9), as methods of the launcher.

One module per baseline; the method name (`tfgrow.train.method`) is the module's name:

- `random_sampling` ("random"): the growing trainer with every structure drawn with one fixed
  probability p and frozen logits; the final architecture keeps each structure with probability p.
- `uniform`: the same fraction of channels in every group, sized to the budget, from scratch.
- `direct_design`: the architecture of a finished growing run, re-initialised, from scratch.
- `l1_pruning`: Li et al. 2017: train the full network, prune the smallest-L1 filters, fine-tune.
- `magnitude_pruning`: tensorflow-model-optimization's magnitude pruning (tf_keras only).

The global temperature scheduler is growing with `tfgrow.train.temperature_mode='global'`.
`plain` holds what the plain-Keras baselines share (data, training, summary); `sizing` the
width-multiplier search against the budget.
"""
