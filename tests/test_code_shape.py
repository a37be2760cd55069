"""The code's shape, checked: small classes and functions, and `common/` only for what several processes
share (services import from common, never from each other; `session_engine/`, the Python API, is the
composition root that wires them together in one process, and no service imports it at module level)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_CLASS_LINES = 300
MAX_FUNCTION_LINES = 40
KERNEL_MODULES = ("common/domain/indicators",)  # numeric kernels: long loops are clearer unsplit
PROCESSES = ("coordinator", "processor", "quality", "analysis", "broker", "ctl", "demo")  # demo: `make run`


def _sources(*tops: str) -> list[Path]:
    return sorted(p for top in tops for p in (ROOT / top).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Project modules a file imports (absolute imports of common/services/strategies)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return {m for m in out if m.split(".")[0] in ("common", "services", "strategies")}


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in _sources("common", "services")}
    return {name: {m for m in _imports(path) if m in modules} for name, path in modules.items()}


def _closure(graph: dict[str, set[str]], roots: list[str]) -> set[str]:
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph.get(name, ()))
    return seen


def _spans(tree: ast.AST, kinds) -> list[tuple[str, int]]:
    return [(node.name, node.end_lineno - node.lineno + 1) for node in ast.walk(tree) if isinstance(node, kinds)]


def test_no_class_over_300_lines():
    big = [(str(p.relative_to(ROOT)), name, n) for p in _sources("common", "services", "strategies", "session_engine")
           for name, n in _spans(ast.parse(p.read_text()), ast.ClassDef) if n > MAX_CLASS_LINES]
    assert big == []


def test_no_function_over_40_lines_outside_the_indicator_kernels():
    big = []
    for path in _sources("common", "services", "strategies", "session_engine"):
        if str(path.relative_to(ROOT)).startswith(KERNEL_MODULES):
            continue
        big += [(str(path.relative_to(ROOT)), name, n)
                for name, n in _spans(ast.parse(path.read_text()), (ast.FunctionDef, ast.AsyncFunctionDef))
                if n > MAX_FUNCTION_LINES]
    assert big == []


def test_services_never_import_each_other():
    graph = _graph()
    crossing = [(name, dep) for name, deps in graph.items() if name.startswith("services.")
                for dep in deps if dep.startswith("services.") and dep.split(".")[1] != name.split(".")[1]]
    assert crossing == []


def test_every_common_module_is_used_by_two_processes_or_more():
    graph = _graph()
    users: dict[str, set[str]] = {}
    for process in PROCESSES:
        roots = [m for m in graph if m == f"services.{process}" or m.startswith(f"services.{process}.")]
        for module in _closure(graph, roots):
            users.setdefault(module, set()).add(process)
    modules = [_module_name(p) for p in _sources("common") if p.name != "__init__.py"]
    lonely = {m: sorted(users.get(m, ())) for m in modules if len(users.get(m, ())) < 2}
    assert lonely == {}


def test_only_ctl_uses_the_python_api_and_only_inside_a_command():
    """ctl sweep runs sessions through session_engine: imported inside the command, so no service
    process ever loads the other services' code."""
    users = []
    for path in _sources("common", "services"):
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top for a in n.names] + [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
        if any(name.split(".")[0] == "session_engine" for name in names):
            users.append(str(path.relative_to(ROOT)))
    assert users == []
