"""The package layout's rules (docs/DESIGN.md, "Package map"), read from the source with `ast`."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gmv_dagster"
DAGSTER_FREE = ("method", "sources", "pipeline", "evaluation", "demo", "common")
# Which package may import which (a package may always import itself): the direction of the map.
ALLOWED = {
    "common": set(),
    "sources": {"common"},
    "pipeline": {"common"},
    "method": {"common", "sources"},
    "demo": {"common"},
    "evaluation": {"common", "sources", "method", "demo"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules `path` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text())
    here = _module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            # `from . import credit` imports the submodule credit
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def _sources() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules} for name, path in modules.items()}


def test_the_method_sources_evaluation_and_demo_never_import_dagster():
    offenders = sorted(
        str(path.relative_to(PACKAGE.parent))
        for pkg in DAGSTER_FREE
        for path in (PACKAGE / pkg).rglob("*.py")
        if any(m == "dagster" or m.startswith(("dagster.", "dagster_")) for m in _imports(path))
    )
    assert offenders == []


def test_packages_import_only_in_the_direction_of_the_map():
    wrong = []
    for module, imported in _sources().items():
        parts = module.split(".")
        if len(parts) < 2 or parts[1] not in ALLOWED:
            continue
        for target in imported:
            tparts = target.split(".")
            if len(tparts) > 1 and tparts[1] != parts[1] and tparts[1] not in ALLOWED[parts[1]]:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_no_module_imports_itself_in_a_circle():
    graph = _sources()
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or nxt.startswith(node + "."):
                continue  # a package importing its own submodule (its __init__) is no cycle
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(path[path.index(nxt) :] + [nxt]) if nxt in path else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []
