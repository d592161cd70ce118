"""The walk every reader of a Keras functional graph shares: its nodes in topological order.

The channel analysis (`analysis.py`), block detection (`blocks.py`) and the graph engine's
execution plan (`tfgrow/growing/plan.py`) all visit layers and their inbound nodes this way,
never TF op names.
"""

import keras


def nodes_in_order(model):
    """(layer, node) pairs of the model's graph in topological order, from its outputs."""
    if not isinstance(model, keras.Model) or not hasattr(model, "_inbound_nodes"):
        raise ValueError(f"Expected a Keras model. Received: {type(model).__name__}")
    if isinstance(model, keras.Sequential) or not hasattr(model, "inputs") or not model.inputs:
        raise ValueError(
            f"Expected a functional Keras model (keras.Model(inputs, outputs)). Received: "
            f"{type(model).__name__} {model.name!r}; rebuild it with keras.Model(inputs, outputs)"
        )
    order, visited = [], set()
    stack = [(t._keras_history, False) for t in model.outputs]
    while stack:
        history, expanded = stack.pop()
        key = (id(history.operation), history.node_index)
        if expanded:
            if key not in visited:
                visited.add(key)
                order.append(
                    (history.operation, history.operation._inbound_nodes[history.node_index])
                )
            continue
        if key in visited:
            continue
        stack.append((history, True))
        node = history.operation._inbound_nodes[history.node_index]
        for tensor in node.input_tensors:
            stack.append((tensor._keras_history, False))
    return order
