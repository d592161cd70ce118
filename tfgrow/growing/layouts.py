"""Active sets of channel *layouts*: the channel axis of a tensor as a sequence of groups.

`tfgrow.graph.analysis` describes the last axis of every tensor as a layout, a tuple of channel
groups each contributing all of its channels in order (a Concatenate's output lists its inputs'
groups; a Flatten repeats the layout once per position). In a compact pass each group runs on
its `ActiveSet`, so a tensor's last axis holds, group after group, the active channels of each;
its `ActiveSet` on the full axis is the concatenation with each group's offset.
"""

import tensorflow as tf

from tfgrow.masks import FULL, ActiveSet, all_complete


class LayoutSets:
    """The `ActiveSet` of every layout in one pass, computed once per layout.

    Args:
        group_names: analysis group index -> name.
        group_sizes: analysis group index -> full width.
        context: the pass' `ExecutionContext`; fixed groups are absent from it (full width).
    """

    def __init__(self, group_names, group_sizes, context):
        self.group_names = group_names
        self.group_sizes = [int(size) for size in group_sizes]
        self.context = context
        self._cache = {}

    def group(self, group):
        return self.context.channels.get(self.group_names[group], FULL)

    def __call__(self, layout):
        """The `ActiveSet` of a layout's full channel axis (FULL when every group is)."""
        layout = tuple(layout)
        if layout not in self._cache:
            self._cache[layout] = self._compute(layout)
        return self._cache[layout]

    def _compute(self, layout):
        sets = [self.group(g) for g in layout]
        if all(active.is_full for active in sets):
            return FULL
        if len(sets) == 1:
            return sets[0]
        indices, values, masks, offset = [], [], [], 0
        for group, active in zip(layout, sets):
            size = self.group_sizes[group]
            if active.is_full:
                indices.append(tf.range(size, dtype=tf.int32) + offset)
                values.append(tf.ones([size]))
                masks.append(tf.ones([size]))
            else:
                indices.append(active.indices + offset)
                values.append(active.values)
                masks.append(active.mask)
            offset += size
        complete = all_complete([active.complete for active in sets])
        return ActiveSet(tf.concat(indices, 0), tf.concat(values, 0), tf.concat(masks, 0), complete)

    def mask(self, layout):
        """Float 0/1 vector over the layout's full axis: the channels this pass computes."""
        active = self(layout)
        if active.is_full:
            return tf.ones([sum(self.group_sizes[g] for g in layout)])
        return active.mask

    def fusable(self, layout):
        """Whether every computed width of the layout is a multiple of 4 (fused batch norm).

        A group runs at its full size or, in the ragged mode, at a multiple of the context's
        `channel_multiple` (`masks.active_set`).
        """
        multiple_ok = self.context.channel_multiple % 4 == 0
        for g in layout:
            if self.group_sizes[g] % 4:
                return False
            if not self.group(g).known_complete and not multiple_ok:
                return False
        return True
