"""The .pyi stub and the built module must describe the same API (names and parameters)."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pmon3
import pytest
from pmon3 import _native

STUB = Path(pmon3.__file__).with_name("_native.pyi")


def params(fn: ast.FunctionDef) -> list[str]:
    """Parameter names in order; keyword-only ones marked with a leading `*`."""
    return [a.arg for a in fn.args.args] + [f"*{a.arg}" for a in fn.args.kwonlyargs]


def stub_api() -> dict[str, list[str]]:
    tree = ast.parse(STUB.read_text())
    api: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            api[node.name] = params(node)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            api[node.target.id] = []  # a module constant
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    args = [a for a in params(item) if a not in ("self", "cls")]
                    api[f"{node.name}.{item.name}"] = args
    return api


def test_every_stub_entry_exists_with_the_same_parameters():
    for name, expected in stub_api().items():
        obj = _native
        for part in name.split("."):
            if part not in ("__init__", "__new__"):  # a constructor's signature is the class's own
                obj = getattr(obj, part)
        if isinstance(obj, property) or not callable(obj):
            continue
        try:
            sig = inspect.signature(obj)
        except (TypeError, ValueError):
            continue
        actual = [
            f"*{p.name}" if p.kind is p.KEYWORD_ONLY else p.name
            for p in sig.parameters.values()
            if p.name not in ("self", "cls", "type", "$self", "$cls")
        ]
        assert actual == expected, f"{name}: module has {actual}, stub has {expected}"


def test_every_public_name_is_in_the_stub():
    api = stub_api()
    public = {n for n in dir(_native) if not n.startswith("_")}
    missing = {n for n in public if n not in api and not any(k.startswith(n + ".") for k in api)}
    assert not missing, f"not described in {STUB.name}: {sorted(missing)}"


def test_version_matches_package():
    assert _native.__version__ == pmon3.__version__


def test_stubtest_agrees():
    """mypy's stubtest: types of constants, defaults, final classes, __all__."""
    pytest.importorskip("mypy.stubtest")
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "pmon3._native"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
