"""vmws.codes.CloseCode is the one definition of the close codes vmws sends:
docs/schema/close-codes.json (the source the web UI's codes are generated from) lists
exactly its members plus the codes only a client sends or reports, no module writes a
close code any other way, and the documented table agrees."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from vmws.codes import CloseCode

ROOT = Path(__file__).resolve().parents[2]
CLOSE_CODES = ROOT / "docs" / "schema" / "close-codes.json"

# Calls whose integer arguments are close codes: ws.close(code, ...), _refuse(exc, code),
# CLOSE_CODES.get(kind, default) (a *CLOSE* table), AuthError(message, code).
_CLOSING_CALLS = {"close", "_refuse", "get", "AuthError"}


def listed(*by: str) -> dict[int, str]:
    """Code → name of the file's entries (those sent ``by`` these parties, if given)."""
    entries = json.loads(CLOSE_CODES.read_text(encoding="utf-8"))["codes"]
    return {e["code"]: e["name"] for e in entries if not by or e["by"] in by}


def codes_in_python(source: str) -> set[int]:
    """Close codes a module writes as numbers: CLOSE_* constants, keys of a *CLOSE*
    table, literals compared with a *code* name, and literals passed to the calls that
    take a close code. None of these should remain outside ``CloseCode``."""
    found: set[int] = set()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, int):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if any(n.startswith("CLOSE_") for n in names):
                found.add(node.value.value)
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            # .get() only on a *CLOSE* table: memory_mib's default of 2048 is no close code.
            receiver = ast.unparse(node.func.value) if isinstance(node.func, ast.Attribute) else ""
            if name in _CLOSING_CALLS and (name != "get" or "close" in receiver.lower()):
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


def test_the_file_lists_exactly_the_enum_plus_client_and_local_codes() -> None:
    assert listed("server") == {code.value: code.name for code in CloseCode}
    assert not set(listed("client", "local")) & set(CloseCode)


def test_no_module_writes_a_close_code_outside_the_enum() -> None:
    written: dict[str, set[int]] = {}
    for package in ("vmws", "harness", "simulator", "loadtests", "scripts"):
        for path in sorted((ROOT / package).rglob("*.py")):
            codes = codes_in_python(path.read_text(encoding="utf-8"))
            if codes:
                written[str(path.relative_to(ROOT))] = codes
    assert not written, f"close codes written as numbers, not as vmws.codes.CloseCode members: {written}"


def test_the_scan_finds_each_way_a_code_is_written() -> None:
    source = """
CLOSE_A = 1003
def f(peer):
    peer.close(1012, "x")
    self._refuse(exc, 1013)
    CLOSE_CODES.get(kind, 1014)
    values.get("memory_mib", 2048)
    raise AuthError("no", 4200)
    if exc.close_code == 4300:
        pass
    size = os.read(fd, 4096)
    return 3000 <= code <= 4999 or limit == 4500
_CLOSE_EXPLAINED = {4400: "why"}
"""
    assert codes_in_python(source) == {1003, 1012, 1013, 1014, 4200, 4300, 4400}


def test_the_documented_close_codes_are_listed() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    documented = {int(c) for c in re.findall(r"\|\s*(\d{4})\s*\|", text)}
    assert documented and documented <= set(listed())
