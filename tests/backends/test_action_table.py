"""``vmws.backend.ACTIONS``, the one action table both backends decide from: whole, in
agreement with its rendering in the module docstring, with the contract suite's
independent copy and with the table of ``docs/protocol.md``."""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path

import pytest

import vmws.backend
from simulator import machine
from tests.contract.suite import EXPECTED
from vmws.backend import ACTIONS, Action, Step, VMStatus, render_action_table, step_of
from vmws.errors import VMNotRunning

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def test_every_action_from_every_status_has_one_step() -> None:
    assert set(ACTIONS) == {(action, status) for action in Action for status in VMStatus}
    with pytest.raises(TypeError):
        ACTIONS[Action.START, VMStatus.RUNNING] = Step.BOOT  # type: ignore[index]


def test_each_step_leads_where_it_says() -> None:
    # a no-op stays where it is; every other step goes elsewhere (but a reboot, a new boot)
    for (action, before), step in ACTIONS.items():
        if step in (Step.NOOP, Step.REFUSE):
            assert step.status is None
        elif step is Step.REBOOT:
            assert step.status is before is VMStatus.RUNNING
        else:
            assert step.status not in (None, before), (action, before, step)


def test_the_docstring_shows_the_table_as_it_is() -> None:
    rendered = render_action_table()
    assert rendered.splitlines()[0].split() == ["action", *(s.value for s in VMStatus)]
    assert textwrap.indent(rendered, "    ") in (vmws.backend.__doc__ or "")


def test_the_contract_suites_own_copy_agrees_cell_by_cell() -> None:
    derived = {
        key: None if step is Step.REFUSE else (key[1] if step is Step.NOOP else step.status)
        for key, step in ACTIONS.items()
    }
    assert derived == EXPECTED


def _protocol_cell(cell: str, before: VMStatus) -> VMStatus | None:
    """A cell of docs/protocol.md's table as a status after (None: VM_NOT_RUNNING)."""
    if cell == "VM_NOT_RUNNING":
        return None
    if cell == "no-op":
        return before
    if cell in ("boot", "reboot", "restore"):
        return VMStatus.RUNNING
    match = re.fullmatch(r"→ (\w+)(?: \(.*\))?", cell)
    assert match, f"docs/protocol.md: unreadable cell {cell!r}"
    return VMStatus(match.group(1))


def test_the_protocol_document_tells_the_same_table() -> None:
    rows = re.findall(r"^\s*\| (start|stop|restart|suspend|resume|pause) \|(.*)\|\s*$", PROTOCOL.read_text(), re.M)
    header = re.search(r"^\s*\| action \|(.*)\|\s*$", PROTOCOL.read_text(), re.M)
    assert header is not None and len(rows) == len(Action)
    columns = [VMStatus(c.strip()) for c in header.group(1).split("|")]
    told = {
        (Action(action), before): _protocol_cell(cell.strip(), before)
        for action, cells in rows
        for before, cell in zip(columns, cells.split("|"), strict=True)
    }
    assert told == EXPECTED


def test_step_of_refuses_with_one_message_for_every_backend() -> None:
    assert step_of(Action.START, VMStatus.STOPPED, "db-1") is Step.BOOT
    with pytest.raises(VMNotRunning, match=r"^VM 'db-1' is stopped: cannot restart it$"):
        step_of(Action.RESTART, VMStatus.STOPPED, "db-1")


def test_the_backends_decide_from_the_table_and_keep_no_copy_of_their_own() -> None:
    # each step the table can ask for has a way to be carried out in each backend
    from vmws.backends.libvirt.backend import LibvirtBackend

    doing = set(Step) - {Step.NOOP, Step.REFUSE}
    assert set(LibvirtBackend._STEPS) == doing
    source = inspect.getsource(machine.Machine._begin)
    assert "step_of(" in source and all(f"Step.{step.name}" in source for step in doing)
    assert not hasattr(machine, "_TABLE") and not hasattr(LibvirtBackend, "_do_start")
