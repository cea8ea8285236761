"""The layering of docs' DESIGN floors, enforced on the source: imports only go down.

Every module of `kbnn/`, `zoo/` (installed as `kbnn.zoo`) and `converters/` (`kbnn.converters`)
is parsed, and *every* import in it is read from the AST — at module level and hidden inside
functions alike (`ast.walk`). An import of a module on a higher floor fails, and so does a cycle
between units (a unit is a core module, or a subpackage: `kbnn.distribute`, `kbnn.compression`,
`kbnn.zoo`, `kbnn.converters`, `kbnn.apps`, `kbnn.cli`).

Floors (higher may import lower, never the reverse; equal floors may import each other as long
as the units form no cycle):
    6  kbnn.cli, kbnn.__main__
    5  kbnn.apps
    4  kbnn.zoo, kbnn.converters   (and neither imports the other)
    3  kernels, models, analysis, plotting, data, imagenet, distribute, compression, resources
    2  activations, initializers, layers, normalization, optimizers
    1  math, quantizers
    0  _keras2, _version, errors, _io, _validation, _registry, _loading
`import kbnn` / `from kbnn import <submodule>` resolve to the submodule; the package `kbnn`
itself is not a dependency (Python runs `kbnn/__init__` before any `kbnn.X` anyway).
"""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = {"kbnn": ROOT / "kbnn", "kbnn.zoo": ROOT / "zoo", "kbnn.converters": ROOT / "converters"}

FLOORS = {
    0: ("_keras2", "_version", "errors", "_io", "_validation", "_registry", "_loading"),
    1: ("math", "quantizers"),
    2: ("activations", "initializers", "layers", "normalization", "optimizers"),
    3: (
        "kernels",
        "models",
        "analysis",
        "plotting",
        "data",
        "imagenet",
        "distribute",
        "compression",
        "resources",
    ),
    4: ("zoo", "converters"),
    5: ("apps",),
    6: ("cli", "__main__"),
}
UNIT_FLOOR = {f"kbnn.{name}": floor for floor, names in FLOORS.items() for name in names}
# Units on the same floor that must not import each other at all.
SEPARATED = {("kbnn.zoo", "kbnn.converters"), ("kbnn.converters", "kbnn.zoo")}
# Allowed exceptions: (importer unit, imported unit) -> reason. Keep this empty if at all possible.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def _module_name(package: str, root: pathlib.Path, path: pathlib.Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for package, root in SOURCES.items():
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" not in path.parts:
                found[_module_name(package, root, path)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str:
    """The longest known module `name` refers to (`kbnn.zoo.api.get` -> `kbnn.zoo.api`)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str, path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, kbnn module) for every import in the file, at any depth."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            if name == "kbnn" or not name.startswith("kbnn."):
                continue
            target = _resolve(name)
            if target and target != "kbnn":
                found.append((node.lineno, target))
    return sorted(set(found))


def unit(module: str) -> str:
    """The unit a module belongs to: `kbnn.<first part>` (a core module or a subpackage)."""
    return ".".join(module.split(".")[:2])


def floor(module: str) -> int:
    name = unit(module)
    if name not in UNIT_FLOOR:
        raise AssertionError(f"{module} is on no floor; add {name!r} to FLOORS in {__file__}")
    return UNIT_FLOOR[name]


EDGES = [
    (module, line, target)
    for module, path in MODULES.items()
    if module != "kbnn"
    for line, target in _imports(module, path)
]


def test_every_module_is_on_a_floor():
    for module in MODULES:
        if module != "kbnn":
            floor(module)


def test_no_upward_imports():
    upward = [
        f"{MODULES[module].relative_to(ROOT)}:{line}: {module} (floor {floor(module)}) imports "
        f"{target} (floor {floor(target)})"
        for module, line, target in EDGES
        if floor(target) > floor(module) and (unit(module), unit(target)) not in EXCEPTIONS
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_zoo_and_converters_stay_apart():
    crossing = [
        f"{MODULES[module].relative_to(ROOT)}:{line}: {module} imports {target}"
        for module, line, target in EDGES
        if (unit(module), unit(target)) in SEPARATED
    ]
    assert not crossing, "\n".join(crossing)


def _unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, _, target in EDGES:
        if unit(module) != unit(target) and (unit(module), unit(target)) not in EXCEPTIONS:
            graph.setdefault(unit(module), set()).add(unit(target))
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path `[a, b, ..., a]`, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_cycles_between_units():
    cycle = find_cycle(_unit_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_checker_sees_hidden_and_relative_imports(tmp_path):
    """The AST walk finds imports inside functions and resolves relative ones."""
    source = tmp_path / "probe.py"
    source.write_text("def f():\n    from kbnn.zoo import api\n    from ..cli import main\n")
    found = _imports("kbnn.apps.probe", source)
    assert (2, "kbnn.zoo.api") in found and (3, "kbnn.cli") in found
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


def test_import_kbnn_loads_no_upper_floor(run_fresh_python, tmp_path):
    """`import kbnn` loads floors 0–3 only (registration included): no zoo, converters, apps
    or cli module."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import sys\nimport kbnn\n"
        "upper = ('kbnn.zoo', 'kbnn.converters', 'kbnn.apps', 'kbnn.cli')\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith(upper)))\n"
        "print('CORE', 'kbnn.quantizers' in sys.modules, 'kbnn.activations' in sys.modules)\n"
    )
    lines = run_fresh_python(script, timeout=120).splitlines()
    assert "LOADED []" in lines, lines[-5:]
    assert "CORE True True" in lines, lines[-5:]  # the probe sees modules that are loaded


def test_the_kbnn_command_loader_registers_the_core_objects(run_fresh_python, tmp_path):
    """The `kbnn` command defers registration to `kbnn._loading.load_model`; a model with the
    activations and initializer that moved out of the zoo (HardTanh, LearnedShift,
    BlurInitializer) still loads there, with the same outputs."""
    import kbnn  # noqa: F401  (Keras 2 before TensorFlow)
    from kbnn import activations, initializers

    import numpy as np
    import tensorflow as tf

    model = tf.keras.Sequential(
        [
            tf.keras.Input((5, 5, 2)),
            activations.LearnedShift(name="shift"),
            activations.HardTanh(name="htanh"),
            tf.keras.layers.DepthwiseConv2D(
                3, depthwise_initializer=initializers.BlurInitializer()
            ),
        ]
    )
    model.get_layer("shift").bias.assign([0.5, -2.0])
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 2)).astype(np.float32)
    np.save(tmp_path / "y.npy", model.predict(x, verbose=0))
    np.save(tmp_path / "x.npy", x)
    model.save(tmp_path / "m.keras")
    script = tmp_path / "probe.py"
    script.write_text(
        "import sys\nsys.argv[0] = 'kbnn'\nimport kbnn\n"
        "print('DEFERRED', 'kbnn.activations' not in sys.modules)\n"
        "import numpy as np\nfrom kbnn._loading import load_model\n"
        f"m = load_model({str(tmp_path / 'm.keras')!r})\n"
        f"y = m.predict(np.load({str(tmp_path / 'x.npy')!r}), verbose=0)\n"
        f"print('SAME', bool(np.array_equal(y, np.load({str(tmp_path / 'y.npy')!r}))))\n"
    )
    lines = run_fresh_python(script, timeout=120).splitlines()
    assert "DEFERRED True" in lines and "SAME True" in lines, lines[-5:]


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of units that import each other in a cycle (Tarjan), largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups, key=len, reverse=True)


def report() -> str:
    """The layering figures of this tree (`python tests/test_layering.py`)."""
    hidden = 0
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {
            line
            for node in tree.body
            if isinstance(node, ast.Import | ast.ImportFrom)
            for line in range(node.lineno, node.end_lineno + 1)
        }
        hidden += sum(1 for line, _ in _imports(module, path) if line not in top)
    upward = [edge for edge in EDGES if floor(edge[2]) > floor(edge[0])]
    cycles = _strongly_connected(_unit_graph())
    lines = [
        f"modules: {len(MODULES)}; imports of kbnn modules: {len(EDGES)}, "
        f"{hidden} inside functions ({hidden / max(1, len(EDGES)):.0%})",
        f"upward imports: {len(upward)}",
        *(f"  {m}:{line} -> {t}" for m, line, t in upward),
        f"groups of units in an import cycle: {len(cycles)}",
        *(f"  {' <-> '.join(group)}" for group in cycles),
    ]
    for level in sorted(FLOORS, reverse=True):
        members = sorted({unit(m) for m in MODULES if m != "kbnn" and floor(m) == level})
        lines.append(f"floor {level}: {', '.join(members)}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
