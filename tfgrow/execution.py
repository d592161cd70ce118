"""What one forward pass runs: active sets per channel group, gates per block, BN mode.

The growing engine's executors (`tfgrow/growing/executors.py`) read each layer's input and output
`ActiveSet`s from an `ExecutionContext` and compute only those channels (DESIGN.md, "Compact
execution"). Layers never assign state during the pass: batch-norm moving statistics are collected
in `state_updates` and applied by the training step after the gradients, in cross-replica context,
so the same layers serve one device, several replicas and (later) Keras `fit`.
"""

import dataclasses

import tensorflow as tf

from tfgrow.masks import FULL


@dataclasses.dataclass
class ExecutionContext:
    """Per-pass state shared by all growable layers.

    Attributes:
        channels: channel group name -> ActiveSet; a missing group runs at full width.
        gates: block name -> Gate; a missing block is always on with value 1.
        training: batch statistics for BN (and collect moving-statistic updates) when True.
        sync_batch_norm: all-reduce BN statistics over replicas, so that N replicas with a global
            batch B give the same result as one device with batch B.
        state_updates: list of (variable, new value) filled by the layers during the pass.
        static_shapes: every tensor shape is known at trace time (XLA): off blocks are skipped
            with `tf.cond` instead of running on a stand-in example.
        overflows: channel group -> number of sampled structures dropped for lack of capacity
            (int32 scalars; only groups run at a fixed capacity appear).
        channel_multiple: every computed width whose size is unknown at trace time (ragged
            mode) is a multiple of this or its group's full size (`masks.active_set`).
        kernel_rows: id(kernel variable) -> the kernel gathered at the active input channels,
            when the training step gathered it before the pass for a compact update
            (`GrowingModel.gather_kernel_rows`); layers then use that tensor.
    """

    channels: dict = dataclasses.field(default_factory=dict)
    gates: dict = dataclasses.field(default_factory=dict)
    training: bool = False
    sync_batch_norm: bool = False
    state_updates: list = dataclasses.field(default_factory=list)
    static_shapes: bool = False
    overflows: dict = dataclasses.field(default_factory=dict)
    channel_multiple: int = 1
    kernel_rows: dict = dataclasses.field(default_factory=dict)

    def active(self, group):
        if group is None:
            return FULL
        return self.channels.get(group, FULL)

    def gate(self, block):
        if block is None:
            return None
        return self.gates.get(block)

    def syncs_across_replicas(self):
        """Whether this pass all-reduces batch-norm statistics (several replicas, sync BN)."""
        context = tf.distribute.get_replica_context()
        return self.sync_batch_norm and context is not None and context.num_replicas_in_sync > 1

    def replica_mean(self, tensors):
        """Means of `tensors` over replicas (identity on one replica or without sync BN)."""
        if not self.syncs_across_replicas():
            return tensors
        context = tf.distribute.get_replica_context()
        summed = context.all_reduce(tf.distribute.ReduceOp.SUM, tensors)
        return [t / context.num_replicas_in_sync for t in summed]
