"""web/src/protocol.generated.ts is what web/scripts/gen_protocol.py makes of the schema
and the close codes today, and no close code is written by hand elsewhere in web/src."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "web" / "scripts" / "gen_protocol.py"
GENERATED = ROOT / "web" / "src" / "protocol.generated.ts"


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_protocol", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_typescript_is_regenerated_unchanged() -> None:
    assert GENERATED.read_text(encoding="utf-8") == _generator().generate(), (
        "web/src/protocol.generated.ts is out of date: run python3 web/scripts/gen_protocol.py"
    )


def test_the_generated_types_carry_every_action_and_close_code() -> None:
    text = GENERATED.read_text(encoding="utf-8")
    assert 'export const ACTIONS = ["start", "stop", "restart", "suspend", "resume", "pause"] as const;' in text
    for entry in json.loads((ROOT / "docs" / "schema" / "close-codes.json").read_text())["codes"]:
        assert f"  {entry['name']}: {entry['code']}," in text


def test_a_schema_change_shows_in_the_output(tmp_path: Path) -> None:
    generator = _generator()
    bundle = json.loads(generator.SCHEMA.read_text(encoding="utf-8"))
    bundle["$defs"]["ConsoleData"]["properties"]["cols"] = {"type": "integer", "description": "a */ trap"}
    changed = tmp_path / "schema.json"
    changed.write_text(json.dumps(bundle))
    generator.SCHEMA = changed
    text = generator.generate()
    assert "  /** a *\\/ trap */\n  cols?: number;" in text
    assert text != GENERATED.read_text(encoding="utf-8")


def test_no_close_code_is_copied_by_hand_into_the_ui() -> None:
    copied = []
    for path in sorted((ROOT / "web" / "src").rglob("*.ts*")):
        if path == GENERATED:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code_like = re.search(r"(?i)(code|close|drop)\b.*\b(?:100[0-9]|101[0-5]|4[0-9]{3})\b", line)
            if code_like and not line.lstrip().startswith(("//", "/*", "*")):
                copied.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not copied, "close codes must come from CloseCode (protocol.generated.ts):\n" + "\n".join(copied)
