"""What a growing run logs for its architecture plots, beyond the loop's own scalars.

Tags (TensorBoard, under `model_dir/train`):
- `active_fraction/<group>`: width of the group in H(s) over its maximal width;
- `temperature/<group>`: mean temperature beta over the group's structures (block gates appear
  as `<block>_gate`);
- `stage_fraction/<stage>`: channels of H(s) in the stage over its maximal channels, counting
  groups inside a block that is off as 0;
- `stage_blocks/<stage>`: blocks of the stage in H(s) (ungated blocks always count);
- `budget/target`: the budget's target fraction.
"""

import re

import numpy as np
import tensorflow as tf

# Group and block names of the zoo's staged networks start with "stage<i>" (keras_resnet.py).
_STAGE = re.compile(r"^(stage\d+)")
# Their stem conv ("stem_conv") starts stage 1's stream: the graph analysis names the stream's
# group after it, and stage 1's blocks add into it.
_STEM = re.compile(r"^stem(_|$)")
NETWORK_STAGE = "network"  # the one stage of a network whose names carry none (VGG)


def stage_of(name):
    """The stage a group or block belongs to: "stage<i>" from its name, "stage1" for the stem
    (stage 1's stream), else "network"."""
    if _STEM.match(name):
        return "stage1"
    match = _STAGE.match(name)
    return match.group(1) if match else NETWORK_STAGE


def architecture_scalars(model, temperature, epoch, budget_target=None):
    """The plot scalars of a growing network now.

    Args:
        model: a growing `GrowingModel` (`tfgrow.grow`).
        temperature: the run's `Temperature`.
        epoch: epochs elapsed (float); the global temperature mode reads it.
        budget_target: the budget's target fraction, logged as `budget/target` (None: not
            logged, the fixed-lambda mode).

    Returns:
        dict tag -> Python float (tags in the module docstring).
    """
    widths, blocks = model.architecture()
    parents = model.groups_parent()
    block_on = {name: blocks.get(name, 1) for name in model.all_block_names()}
    result = {}
    stage_width, stage_size, stage_blocks = {}, {}, {}
    for name, group in model.channel_groups.items():
        result[f"active_fraction/{name}"] = widths[name] / group.size
        stage = stage_of(name)
        on = block_on.get(parents[name], 1) if parents[name] else 1
        stage_width[stage] = stage_width.get(stage, 0) + widths[name] * on
        stage_size[stage] = stage_size.get(stage, 0) + group.size
    for stage in stage_size:
        result[f"stage_fraction/{stage}"] = stage_width[stage] / stage_size[stage]
    for name, on in block_on.items():
        stage_blocks[stage_of(name)] = stage_blocks.get(stage_of(name), 0) + on
    for stage, count in stage_blocks.items():
        result[f"stage_blocks/{stage}"] = float(count)
    for name, group in model.group_variables().items():
        beta = temperature.beta(tf.convert_to_tensor(group.counters), float(epoch))
        result[f"temperature/{name}"] = float(np.mean(beta.numpy()))
    if budget_target is not None:
        result["budget/target"] = float(budget_target)
    return result


def write_scalars(writer, step, scalars):
    """Writes a dict tag -> float with a `tf.summary` writer at `step`."""
    with writer.as_default(step=int(step)):
        for tag, value in scalars.items():
            tf.summary.scalar(tag, value)
