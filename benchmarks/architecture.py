"""The package's architecture rules, measured statically (ast, no imports, no TensorFlow).

    python -m benchmarks.architecture            # the report; exit status 1 on a violation

Rules (issue 11, item 5; ../shared/STYLE.md):

- no import cycles among `tfgrow` modules. Imports at module level and imports inside functions
  (deferred to the first call) are graphed separately: the module-level graph must be acyclic,
  and so must the graph of both kinds, so that no function-level import hides a cycle;
- no module over `MAX_MODULE_LINES` lines, no function over `MAX_FUNCTION_LINES` (a function's
  lines run from its `def` to its last line, docstring included);
- no private name (`_name`) of a `tfgrow` module used from another package, whether imported
  (`from tfgrow.train.loop import _load_data`) or reached as an attribute (`loop._load_data`);
- the network code (`tfgrow.graph`, `tfgrow.growing`, `tfgrow.models`) and the method's
  primitives (`tfgrow.masks`, `tfgrow.cost`, `tfgrow.compact`, `tfgrow.execution`,
  `tfgrow.conv_ops`) never import `tfgrow.train`, directly or through other modules.

An edge `a -> b` means module `a` names module `b` in an import: `import tfgrow.x.y` gives
`tfgrow.x.y`; `from tfgrow.x import y` gives the package `tfgrow.x` (Python runs its `__init__`
first) and `tfgrow.x.y` when y is a module. So a module inside a package whose `__init__`
re-exports it imports its siblings as `import tfgrow.x.z as z_lib`, not through the package.
These are the rules `../shared/checks/code_health.py` applies.
"""

import ast
import os
import sys
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "tfgrow"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
# Packages and modules that must not reach the training code, and the training code itself.
TRAINING_FREE = (
    "tfgrow.graph",
    "tfgrow.growing",
    "tfgrow.models",
    "tfgrow.masks",
    "tfgrow.cost",
    "tfgrow.compact",
    "tfgrow.execution",
    "tfgrow.conv_ops",
)
TRAINING = "tfgrow.train"


@dataclass
class Module:
    """One parsed source file: its dotted name, path, line count and syntax tree."""

    name: str
    path: str
    num_lines: int
    tree: ast.Module
    is_package: bool
    # (imported module, line, at module level?) for every import of a tfgrow module.
    imports: list = field(default_factory=list)


@dataclass
class Report:
    """What `measure` found; every list holds human-readable violations."""

    module_cycles: list
    function_level_cycles: list
    long_modules: list
    long_functions: list
    private_imports: list
    training_imports: list

    def violations(self):
        return (
            self.module_cycles
            + self.function_level_cycles
            + self.long_modules
            + self.long_functions
            + self.private_imports
            + self.training_imports
        )


def load_modules(root=REPO, package=PACKAGE):
    """Every module of `package` under `root`, by dotted name."""
    modules = {}
    for directory, _, files in os.walk(os.path.join(root, package)):
        for file in sorted(files):
            if not file.endswith(".py"):
                continue
            path = os.path.join(directory, file)
            relative = os.path.relpath(path, root)[: -len(".py")].split(os.sep)
            is_package = relative[-1] == "__init__"
            name = ".".join(relative[:-1] if is_package else relative)
            with open(path) as f:
                source = f.read()
            modules[name] = Module(
                name, path, len(source.splitlines()), ast.parse(source, path), is_package
            )
    for module in modules.values():
        module.imports = list(_imports(module, modules))
    return modules


def _imports(module, modules):
    """(target module, line, at module level) for each tfgrow module `module` imports, with the
    package `from tfgrow.x import y` initialises."""
    for line, at_module_level, _, target, _ in _tfgrow_imports(module, modules):
        yield target, line, at_module_level
    for node, at_module_level in _import_nodes(module.tree):
        if isinstance(node, ast.ImportFrom):
            base = _absolute(module, node)
            if base in modules and modules[base].is_package:
                yield base, node.lineno, at_module_level


def _tfgrow_imports(module, modules):
    """(line, at module level, local name, module, name) for each import of a tfgrow module:
    `name` is the imported attribute when it is not a module itself (else None); the local name
    is None for `import tfgrow.x.y` without `as`."""
    for node, at_module_level in _import_nodes(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    yield node.lineno, at_module_level, alias.asname, alias.name, None
            continue
        base = _absolute(module, node)
        if base not in modules:
            continue
        for alias in node.names:
            local, target = alias.asname or alias.name, f"{base}.{alias.name}"
            if target in modules:
                yield node.lineno, at_module_level, local, target, None
            else:
                yield node.lineno, at_module_level, local, base, alias.name


def _absolute(module, node):
    """The dotted module an `ImportFrom` reads from, with relative imports resolved."""
    if not node.level:
        return node.module
    parts = module.name.split(".")
    parts = parts if module.is_package else parts[:-1]
    parts = parts[: len(parts) - node.level + 1]
    return ".".join(parts + ([node.module] if node.module else []))


def _import_nodes(tree):
    """Every import statement with whether it runs at import time (outside any function)."""

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, not in_function
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            yield from visit(child, inner)

    yield from visit(tree, False)


def import_graph(modules, module_level_only):
    """{module: set of modules it imports}."""
    return {
        name: {
            target
            for target, _, at_module_level in module.imports
            if target != name and (at_module_level or not module_level_only)
        }
        for name, module in modules.items()
    }


def strongly_connected_components(graph):
    """Tarjan's components with more than one module (each one holds a cycle), largest first."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def connect(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for node in sorted(graph):
            if node not in index:
                connect(node)
    finally:
        sys.setrecursionlimit(limit)
    return sorted(components, key=lambda c: (-len(c), c))


def shortest_path(graph, start, is_goal, within=None):
    """A shortest import chain [start, ..., goal] to the first module where `is_goal` holds
    (breadth first, successors in name order; only modules in `within` when given), or None.
    The start itself counts as a goal only when a chain returns to it (a cycle)."""
    parents, frontier = {start: None}, [start]
    while frontier:
        next_frontier = []
        for node in frontier:
            for successor in sorted(graph[node]):
                if within is not None and successor not in within:
                    continue
                if is_goal(successor):
                    chain = [node]
                    while parents[chain[-1]] is not None:
                        chain.append(parents[chain[-1]])
                    return [*reversed(chain), successor]
                if successor not in parents:
                    parents[successor] = node
                    next_frontier.append(successor)
        frontier = next_frontier
    return None


def shortest_cycle(graph, component):
    """One shortest cycle through the component's first module, as a list of modules."""
    start = component[0]
    return shortest_path(graph, start, lambda name: name == start, set(component))


def long_functions(modules, limit=MAX_FUNCTION_LINES):
    """(module path, qualified function name, lines) of every function over `limit` lines."""
    found = []

    def visit(node, module, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    num_lines = child.end_lineno - child.lineno + 1
                    if num_lines > limit:
                        found.append((module.path, name, num_lines))
                visit(child, module, name + ".")
            else:
                visit(child, module, prefix)

    for module in modules.values():
        visit(module.tree, module, "")
    return found


def _package_of(module):
    return module.name if module.is_package else module.name.rpartition(".")[0]


def private_uses(modules):
    """(module, line, 'target._name') for private names of another package's tfgrow modules."""
    found = []
    for module in modules.values():
        package = _package_of(module)
        aliases = {}  # local name -> tfgrow module it stands for
        for line, _, local, target, name in _tfgrow_imports(module, modules):
            if name is None:
                if local:
                    aliases[local] = target
            elif name.startswith("_") and _package_of(modules[target]) != package:
                found.append((module.name, line, f"{target}.{name}"))
        for node in ast.walk(module.tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
            ):
                target = modules[aliases[node.value.id]]
                if _package_of(target) != package:
                    found.append((module.name, node.lineno, f"{target.name}.{node.attr}"))
    return found


def reaches(graph, start, prefix):
    """A shortest import chain from `start` to a module under `prefix`, or None."""
    return shortest_path(graph, start, lambda name: name == prefix or name.startswith(prefix + "."))


def measure(root=REPO):
    """The `Report` for the package under `root` (the repository root)."""
    modules = load_modules(root)
    module_graph = import_graph(modules, module_level_only=True)
    full_graph = import_graph(modules, module_level_only=False)
    module_components = strongly_connected_components(module_graph)
    function_components = [
        c for c in strongly_connected_components(full_graph) if c not in module_components
    ]

    def describe_cycles(graph, components, kind):
        return [
            f"{kind} import cycle among {len(c)} modules, e.g. "
            + " -> ".join(shortest_cycle(graph, c))
            for c in components
        ]

    relative = {m.path: os.path.relpath(m.path, root) for m in modules.values()}
    training_imports = []
    for name in sorted(modules):
        if name.startswith(TRAINING_FREE):
            chain = reaches(full_graph, name, TRAINING)
            if chain:
                training_imports.append("training code imported: " + " -> ".join(chain))
    return Report(
        module_cycles=describe_cycles(module_graph, module_components, "module-level"),
        function_level_cycles=describe_cycles(
            full_graph, function_components, "function-level (deferred)"
        ),
        long_modules=[
            f"{relative[m.path]}: {m.num_lines} lines (> {MAX_MODULE_LINES})"
            for m in sorted(modules.values(), key=lambda m: m.path)
            if m.num_lines > MAX_MODULE_LINES
        ],
        long_functions=[
            f"{relative[path]} {name}: {num_lines} lines (> {MAX_FUNCTION_LINES})"
            for path, name, num_lines in sorted(long_functions(modules))
        ],
        private_imports=[
            f"{name}:{line} uses private {target} of another package"
            for name, line, target in sorted(private_uses(modules))
        ],
        training_imports=training_imports,
    )


def main():
    report = measure()
    sections = [
        ("module-level import cycles", report.module_cycles),
        ("cycles closed by function-level imports", report.function_level_cycles),
        (f"modules over {MAX_MODULE_LINES} lines", report.long_modules),
        (f"functions over {MAX_FUNCTION_LINES} lines", report.long_functions),
        ("private names used across packages", report.private_imports),
        ("network code reaching tfgrow.train", report.training_imports),
    ]
    for title, items in sections:
        print(f"{title}: {len(items)}")
        for item in items:
            print(f"  {item}")
    return 1 if report.violations() else 0


if __name__ == "__main__":
    sys.exit(main())
