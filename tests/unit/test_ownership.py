"""The ownership rules of docs/architecture.md, checked on the source: each fails when a module breaks one."""

from __future__ import annotations

import ast
from pathlib import Path

import pmon3

PKG = Path(pmon3.__file__).parent
HANDLERS = PKG / "daemon" / "handlers"


def modules() -> dict[str, ast.Module]:
    return {str(p.relative_to(PKG)): ast.parse(p.read_text(), str(p)) for p in PKG.rglob("*.py")}


def test_only_the_supervisor_assigns_a_status():
    offenders = []
    for name, tree in modules().items():
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            for target in targets:
                # the assigned-to nodes themselves (a tuple unpacks into several), not what indexes them
                for t in target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]:
                    if isinstance(t, ast.Attribute) and t.attr == "status" and name != "daemon/supervisor.py":
                        offenders.append(f"{name}:{t.lineno}")
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setattr":
                if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and node.args[1].value == "status":
                    offenders.append(f"{name}:{node.lineno}")
    assert offenders == []


def test_the_supervisor_changes_status_only_through_set_status():
    tree = ast.parse((PKG / "daemon" / "supervisor.py").read_text())
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef) or fn.name == "_set_status":
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    assert not (isinstance(t, ast.Attribute) and t.attr == "status"), f"{fn.name}:{node.lineno}"


def _imports(tree: ast.Module) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names += [f"{'.' * node.level}{node.module or ''}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return names


def test_handlers_only_delegate():
    siblings = {p.stem for p in HANDLERS.glob("*.py") if p.stem != "__init__"}
    for path in HANDLERS.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                named = {node.module} if node.module else {a.name for a in node.names}
                assert not (named & siblings), f"{path.name}:{node.lineno} imports a handler: {named & siblings}"
            if isinstance(node, ast.Attribute):
                # no row locks, no store access, no status writes: those belong to the supervisor
                assert node.attr not in ("lock", "store", "_set_status", "update_runtime", "insert"), (
                    f"{path.name}:{node.lineno} uses .{node.attr}"
                )


def test_only_the_store_imports_apsw_and_only_allowed_modules_import_native():
    for name, tree in modules().items():
        imported = _imports(tree)
        if name != "store.py":
            assert not any(i.split(".")[0] == "apsw" for i in imported), name
        if any(i.endswith("._native") or i == ".._native" or i.endswith(". _native") for i in imported) or any(
            i.rsplit(".", 1)[-1] == "_native" for i in imported
        ):
            assert name.startswith(("daemon/", "cli/", "ipc/transport.py", "client.py")), name


def test_shared_vocabulary_imports_no_daemon_or_cli_code():
    for name in ("states.py", "models.py", "errors.py", "ipc/protocol.py", "ipc/messages.py", "ipc/records.py"):
        tree = ast.parse((PKG / name).read_text())
        for imported in _imports(tree):
            assert "daemon" not in imported and "cli" not in imported, (name, imported)
