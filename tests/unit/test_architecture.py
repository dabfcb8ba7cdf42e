"""The package picture (docs/architecture.md), read from the source: who may import whom.

Every import counts, a function's own included, so a lazy import cannot hide an arrow that
points the wrong way. The engine is a leaf: of the client it uses only the definitions that
every side shares (parameters, protocol, pixel layouts, progress, wording), which import
nothing else of the client themselves.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "nst_client": ROOT / "nst_client",
    "nst_core": ROOT / "nst_core",
    "nst_app": ROOT / "nst_app",
    "nst_daemon": ROOT / "daemon" / "nst_daemon",
    "nst_plugins": ROOT / "plugins" / "nst_plugins",
}
#: The client's shared definitions: what the engine and the daemon may import of it.
DEFINITIONS = {
    "nst_client",
    "nst_client.params",
    "nst_client.strength",
    "nst_client.protocol",
    "nst_client.layouts",
    "nst_client.progress",
    "nst_client.engine_words",
    "nst_client.endpoints",
    "nst_client.keyfiles",
}
#: What each package must never import (any module of it).
FORBIDDEN = {
    "nst_core": {"nst_daemon", "nst_plugins", "nst_app"},
    "nst_client": {"nst_core", "nst_daemon", "nst_plugins", "nst_app"},
    "nst_daemon": {"nst_plugins", "nst_app"},
    "nst_plugins": {"nst_core", "nst_app"},
}
#: A product module longer than this is doing more than one job.
MAX_LINES = 600


def _module_name(package: str, path: Path) -> str:
    parts = path.relative_to(PACKAGES[package]).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join((package, *parts))


def _imports(module: str, path: Path) -> set[str]:
    """Absolute names of every module the file imports (relative ones resolved)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.add(name)
            # `from package import module` imports that module too.
            found |= {f"{name}.{alias.name}" for alias in node.names}
    return found


def _modules() -> dict[str, tuple[str, Path]]:
    """Every product module: name -> (package, path)."""
    out = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            out[_module_name(package, path)] = (package, path)
    return out


MODULES = _modules()


def _first_party(names: set[str]) -> set[str]:
    return {n for n in names if n.split(".")[0] in PACKAGES and n in MODULES}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_arrow_points_up(package: str) -> None:
    for module, (owner, path) in MODULES.items():
        if owner != package:
            continue
        wrong = {n for n in _imports(module, path) if n.split(".")[0] in FORBIDDEN[package]}
        assert not wrong, f"{module} imports {sorted(wrong)}"


def test_the_engine_is_a_leaf() -> None:
    """nst_core, and everything it imports in turn, reaches only the client's definitions."""
    seen: set[str] = set()
    todo = [m for m, (owner, _) in MODULES.items() if owner == "nst_core"]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += sorted(_first_party(_imports(module, MODULES[module][1])) - seen)
    client = {m for m in seen if m.startswith("nst_client")}
    assert client <= DEFINITIONS, sorted(client - DEFINITIONS)
    assert not {m for m in seen if m.split(".")[0] not in ("nst_core", "nst_client")}


def test_the_daemon_uses_only_the_clients_definitions() -> None:
    for module, (owner, path) in MODULES.items():
        if owner == "nst_daemon":
            client = {n for n in _first_party(_imports(module, path)) if n.startswith("nst_client")}
            assert client <= DEFINITIONS, (module, sorted(client - DEFINITIONS))


def test_the_definitions_import_only_each_other() -> None:
    for module in DEFINITIONS:
        names = _first_party(_imports(module, MODULES[module][1]))
        assert names <= DEFINITIONS, (module, sorted(names - DEFINITIONS))


def test_no_product_module_is_over_its_size() -> None:
    plugin_files = [*(ROOT / "plugins").glob("*/*/*.py")]
    long = {
        str(path.relative_to(ROOT)): n
        for path in [*(p for _, p in MODULES.values()), *plugin_files]
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, long


def test_the_walk_sees_lazy_imports(tmp_path: Path) -> None:
    """The check reads imports inside functions: a fixture of its own, so it cannot pass by
    seeing nothing."""
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from nst_daemon import launch_command\n    from . import plan\n")
    assert _imports("nst_core.probe", path) >= {"nst_daemon", "nst_core.plan"}
