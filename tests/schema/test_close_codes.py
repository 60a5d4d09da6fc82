"""docs/schema/close-codes.json lists every close code the Python tree defines (the one
source the web UI's codes are generated from), and the documented table agrees."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLOSE_CODES = ROOT / "docs" / "schema" / "close-codes.json"

# Calls whose integer arguments are close codes: ws.close(code, ...), _refuse(exc, code),
# CLOSE_CODES.get(kind, default), AuthError(message, code).
_CLOSING_CALLS = {"close", "_refuse", "get", "AuthError"}


def listed() -> dict[int, str]:
    entries = json.loads(CLOSE_CODES.read_text(encoding="utf-8"))["codes"]
    return {e["code"]: e["name"] for e in entries}


def codes_in_python(source: str) -> set[int]:
    """Close codes a module defines: CLOSE_* constants, CloseCode members, keys of a
    *CLOSE* table, literals compared with a *code* name, and literals passed to the
    calls that take a close code."""
    found: set[int] = set()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, int):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if any(n.startswith("CLOSE_") for n in names):
                found.add(node.value.value)
        elif isinstance(node, ast.ClassDef) and node.name == "CloseCode":
            for item in node.body:
                if isinstance(item, ast.Assign) and isinstance(item.value, ast.Constant):
                    found.add(int(item.value.value))
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in _CLOSING_CALLS:
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and type(arg.value) is int and 1000 <= arg.value <= 4999:
                        found.add(arg.value)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if any("CLOSE" in n.upper() for n in names):
                found.update(_ints(node.value.keys))
        elif isinstance(node, ast.Compare) and all(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops):
            sides = [node.left, *node.comparators]
            if any("code" in ast.unparse(s).lower() for s in sides if not isinstance(s, ast.Constant)):
                found.update(_ints(sides))
    return found


def _ints(nodes: list[ast.expr | None] | list[ast.expr]) -> set[int]:
    return {n.value for n in nodes if isinstance(n, ast.Constant) and type(n.value) is int and 1000 <= n.value <= 4999}


def test_the_file_is_well_formed() -> None:
    entries = json.loads(CLOSE_CODES.read_text(encoding="utf-8"))["codes"]
    assert [e["code"] for e in entries] == sorted({e["code"] for e in entries})
    assert len({e["name"] for e in entries}) == len(entries)
    for entry in entries:
        assert set(entry) == {"code", "name", "by", "meaning"}
        assert entry["by"] in ("server", "client", "local")
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", entry["name"])
        assert 1000 <= entry["code"] <= 4999 and entry["meaning"]


def test_every_close_code_of_the_python_tree_is_listed() -> None:
    missing: dict[str, set[int]] = {}
    for path in sorted((ROOT / "vmws").rglob("*.py")):
        unlisted = codes_in_python(path.read_text(encoding="utf-8")) - set(listed())
        if unlisted:
            missing[str(path.relative_to(ROOT))] = unlisted
    assert not missing, f"close codes used in vmws/ but missing from {CLOSE_CODES.relative_to(ROOT)}: {missing}"


def test_the_scan_finds_each_way_a_code_is_written() -> None:
    source = """
CLOSE_A = 1003
class CloseCode(enum.IntEnum):
    B = 4100
def f(peer):
    peer.close(1012, "x")
    self._refuse(exc, 1013)
    CODES.get(kind, 1014)
    raise AuthError("no", 4200)
    if exc.close_code == 4300:
        pass
    size = os.read(fd, 4096)
    return 3000 <= code <= 4999 or limit == 4500
_CLOSE_EXPLAINED = {4400: "why"}
"""
    assert codes_in_python(source) == {1003, 4100, 1012, 1013, 1014, 4200, 4300, 4400}


def test_the_documented_close_codes_are_listed() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    documented = {int(c) for c in re.findall(r"\|\s*(\d{4})\s*\|", text)}
    assert documented and documented <= set(listed())
