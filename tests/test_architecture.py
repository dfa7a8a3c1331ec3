"""The package's import graph: no cycle, and the numerical core independent of the edges."""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "nanobragg"
#: Layers that compute (pure functions of tensors) and the layers they must not import.
CORE = ("engine", "physics", "geometry")
EDGES = ("cli", "io", "tools")


def _module_name(path: Path) -> str:
    parts = ["nanobragg", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list:
    """Absolute names a ``from ... import`` brings in (the module, and each name as a submodule)."""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[:len(base) - node.level + 1]
        head = ".".join(base + ([node.module] if node.module else []))
    else:
        head = node.module or ""
    return [head] + [f"{head}.{alias.name}" for alias in node.names]


def import_graph() -> dict:
    """Module -> set of package modules it imports (anywhere in its body, lazy imports included)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                found.update(_resolve(name, path.name == "__init__.py", node))
        graph[name] = {m for m in found if m in files and m != name}
    return graph


def _cycle(graph: dict):
    """One import cycle as a list of modules, or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return None
    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _is_package_init_edge(a: str, b: str) -> bool:
    """A package's __init__ importing its own submodule (and that submodule importing a sibling
    through the package) is how packages export; only cycles between distinct modules count."""
    return b.startswith(a + ".") or a.startswith(b + ".")


def test_no_import_cycle():
    graph = import_graph()
    graph = {m: {n for n in deps if not _is_package_init_edge(m, n)} for m, deps in graph.items()}
    assert _cycle(graph) is None


def test_the_numerical_core_imports_no_edge_layer():
    graph = import_graph()
    bad = sorted((m, n) for m, deps in graph.items() for n in deps
                 if m.split(".")[1] in CORE and n.split(".")[1] in EDGES)
    assert bad == []


def test_the_graph_is_read():
    """The checks above see real imports (a parser that found none would pass them vacuously)."""
    graph = import_graph()
    assert "nanobragg.engine.render" in graph["nanobragg.engine.image"]
    assert "nanobragg.cli.simulate" in graph["nanobragg.cli.main"]
