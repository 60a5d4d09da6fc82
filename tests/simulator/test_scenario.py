"""The scenario file format: what parses to what, and errors that name the line and field."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from simulator.fleet import PROFILES, EventKind, Init, ProfileKind
from simulator.personalities import ALPINE, DEBIAN
from simulator.scenario import (
    MAX_VMS,
    ScenarioError,
    demo_fleet,
    expand_braces,
    load_scenario,
    parse_rate,
    parse_scenario,
)
from vmws.backend import Action, VMStatus


def test_demo_fleet_has_the_names_others_rely_on() -> None:
    statuses = {vm.name: vm.status for vm in demo_fleet().vms}
    assert len(statuses) == 10
    for name in ("my-vm", "web-1", "web-2", "web-3", "web-4", "web-5"):
        assert statuses[name] is VMStatus.RUNNING
    assert statuses["db-1"] is VMStatus.STOPPED
    assert statuses["batch-1"] is VMStatus.PAUSED
    assert statuses["cache-1"] is VMStatus.SUSPENDED
    assert statuses["legacy-1"] is VMStatus.ERROR
    for vm in demo_fleet().vms:
        assert (vm.personality.username, vm.personality.password) == ("admin", "admin")
        assert vm.personality.os_name.startswith("Ubuntu 22.04")
        assert vm.personality.hostname_for(vm.name) == vm.name
    assert demo_fleet().events == ()  # nothing happens on its own


@pytest.mark.parametrize(
    "name",
    sorted(p.name for p in resources.files("simulator").joinpath("scenarios").iterdir() if p.name.endswith(".toml")),
)
def test_every_shipped_scenario_parses(name: str) -> None:
    fleet = load_scenario(Path(str(resources.files("simulator").joinpath("scenarios", name))))
    assert fleet.vms and fleet.name


def test_a_phase_one_file_takes_defaults(tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text('[[vm]]\nname = "a"\n\n[[vm]]\nname = "b"\nstatus = "stopped"\nmemory_mib = 512\nvcpus = 1\n')
    fleet = load_scenario(path)
    a, b = fleet.vms
    assert (a.name, a.status, a.memory_mib, a.vcpus, a.profile.name) == ("a", VMStatus.RUNNING, 2048, 2, "idle")
    assert (b.name, b.status, b.memory_mib, b.vcpus) == ("b", VMStatus.STOPPED, 512, 1)
    assert a.personality is b.personality  # defaults are shared, not copied per VM


def test_templates_ranges_and_shared_values() -> None:
    fleet = parse_scenario(
        """
        [template.web]
        memory_mib = 4096
        metrics = "web"
        timings = { boot = "20s", shutdown = 3 }

        [[vm]]
        name = "web-{001..500}"
        template = "web"
        vcpus = 4
        timings = { shutdown = "4s" }

        [[vm]]
        name = "rack{1..2}-{a,b}"
        """
    )
    webs = [vm for vm in fleet.vms if vm.name.startswith("web-")]
    assert [vm.name for vm in webs[:2]] == ["web-001", "web-002"] and webs[-1].name == "web-500"
    first = webs[0]
    assert (first.memory_mib, first.vcpus, first.profile.kind) == (4096, 4, ProfileKind.WEB)
    assert (first.timings.boot, first.timings.shutdown) == (20.0, 4.0)  # merged key by key, the VM wins
    assert all(vm.timings is first.timings and vm.personality is first.personality for vm in webs)
    assert [vm.name for vm in fleet.vms[500:]] == ["rack1-a", "rack1-b", "rack2-a", "rack2-b"]


def test_personalities_builtin_and_custom() -> None:
    fleet = parse_scenario(
        """
        [personality.corp]
        base = "debian"
        hostname = "{name}.corp.example"
        users = [ { name = "ops", password = "pw", sudo = true }, { name = "guest", password = "g" } ]
        files = { "/opt/app/VERSION" = "4.2\\n" }

        [[vm]]
        name = "a"
        personality = "corp"

        [[vm]]
        name = "b"
        personality = "alpine-3.19"
        """
    )
    corp, alpine = fleet.vms[0].personality, fleet.vms[1].personality
    assert corp.os_name == DEBIAN.os_name and corp.name == "corp"
    assert corp.hostname_for("a") == "a.corp.example"
    assert [(u.name, u.sudo) for u in corp.users] == [("ops", True), ("guest", False)]
    files = dict(corp.files)
    assert files["/opt/app/VERSION"] == "4.2\n" and "/etc/debian_version" in files  # base files kept
    assert alpine is ALPINE and alpine.init is Init.OPENRC


def test_profiles_override_their_kind() -> None:
    fleet = parse_scenario(
        """
        [profile.busy]
        kind = "web"
        cpu = 60
        net = "2MiB/s"

        [profile.batch]
        period = "30m"

        [[vm]]
        name = "a"
        metrics = "busy"

        [[vm]]
        name = "b"
        metrics = "batch"
        """
    )
    busy, batch = fleet.vms[0].profile, fleet.vms[1].profile
    assert (busy.kind, busy.cpu, busy.net, busy.memory) == (ProfileKind.WEB, 60.0, 2 * 2**20, PROFILES["web"].memory)
    assert (batch.kind, batch.period, batch.burst) == (ProfileKind.BATCH, 1800.0, PROFILES["batch"].burst)


def test_timeline_events() -> None:
    fleet = parse_scenario(
        """
        [[vm]]
        name = "web-{001..010}"

        [[event]]
        at = "90s"
        vm = "web-007"
        event = "crash"

        [[event]]
        at = "1m30s"
        vm = ["web-00[1-3]", "web-010"]
        event = "fail-next-command"
        action = "stop"
        times = 2
        message = "no"

        [[event]]
        at = 5
        every = "5m"
        repeat = 3
        vm = "web-*"
        pick = 2
        event = "disk-burst"
        rate = "80MiB/s"
        duration = "45s"

        [[event]]
        at = "0s"
        vm = "web-{002..003}"
        event = "stop"
        force = true

        [[event]]
        at = "1s"
        vm = "web-001"
        event = "type"
        text = "admin\\n"
        """
    )
    crash, fail, burst, stop, typed = fleet.events
    assert (crash.at, crash.kind, crash.vms, crash.line) == (90.0, EventKind.CRASH, ("web-007",), 5)
    assert fail.vms == ("web-001", "web-002", "web-003", "web-010")
    assert (fail.action, fail.times, fail.message) == (Action.STOP, 2, "no")
    assert (burst.at, burst.every, burst.repeat, burst.pick, burst.rate, burst.duration) == (
        5.0,
        300.0,
        3,
        2,
        80 * 2**20,
        45.0,
    )
    assert len(burst.vms) == 10
    assert stop.kind.action is Action.STOP and stop.force and stop.vms == ("web-002", "web-003")
    assert typed.text == "admin\n"


def test_names_any_printable_name_without_a_slash() -> None:
    fleet = parse_scenario('[[vm]]\nname = "<&> \\"quoted\\""\n')
    assert fleet.vms[0].name == '<&> "quoted"'


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[[vm]\nname = 'a'", 1, "not valid TOML"),
        ("", None, "no VMs"),
        ("title = 'x'\n[[vm]]\nname = 'a'", None, "unknown top-level key 'title'"),
        ("[[vm]]\nstatus = 'running'", 1, "vm #1: name is required"),
        ("[[vm]]\nname = 'bad/name'", 2, "name 'bad/name' must be 1-63 printable characters"),
        ("[[vm]]\nname = 'a'\n\ncolour = 'red'", 4, "vm 'a': unknown field 'colour'"),
        (
            "[[vm]]\nname = 'a'\n[[vm]]\nname = 'b'\nstatus = 'booting'",
            5,
            "vm 'b': status must be one of running, stopped",
        ),
        ("[[vm]]\nname = 'a'\nmemory_mib = true", 3, "memory_mib must be an integer"),
        ("[[vm]]\nname = 'a'\nvcpus = 0", 3, "vcpus must be an integer from 1 to 512, got 0"),
        ("[[vm]]\nname = 'a'\n[[vm]]\nname = 'a'", 4, "vm 'a': name is defined twice"),
        ("[[vm]]\nname = 'web-{1..3}'\n[[vm]]\nname = 'web-2'", 4, "vm 'web-2': name is defined twice"),
        ("vm = 3", None, "no VMs"),
        ("vm = [1]", None, "vm #1: each [[vm]] entry must be a table"),
        ("[[vm]]\nname = 'a'\ntemplate = 'nope'", 3, "template must name a [template.NAME] (none defined)"),
        ("[template.t]\nvcpus = 'x'\n[[vm]]\nname = 'a'\ntemplate = 't'", 2, "template 't': vcpus must be"),
        ("[[vm]]\nname = 'a'\npersonality = 'windows'", 3, "personality must name"),
        ("[[vm]]\nname = 'a'\nmetrics = 'gpu'", 3, "metrics must name a profile (idle, web, batch, leak)"),
        ("[[vm]]\nname = 'a'\n[vm.timings]\nboot = 'soon'", 4, "boot must be a duration"),
        ("[[vm]]\nname = 'a'\ntimings = { boot = 200 }", 3, "boot (200 s, up to 20 % more with jitter) must stay"),
        ("[[vm]]\nname = 'a'\ntimings = { nap = 1 }", 3, "unknown timing 'nap'"),
        ("[personality.p]\nbase = 'windows'\n[[vm]]\nname = 'a'", 2, "base must be a built-in personality"),
        ("[personality.p]\nusers = []\n[[vm]]\nname = 'a'", 2, "users must be a non-empty array"),
        (
            "[personality.p]\nusers = [{name = 'Bad User', password = 'x'}]\n[[vm]]\nname = 'a'",
            2,
            "users: name must be a Unix user name",
        ),
        (
            "[personality.p]\n[personality.p.files]\n'etc/x' = 'y'\n[[vm]]\nname = 'a'",
            3,
            "must be an absolute, normalised path",
        ),
        ("[profile.p]\ncpu = 5\n[[vm]]\nname = 'a'", 1, "profile 'p': kind is required"),
        (
            "[profile.p]\nkind = 'batch'\nburst = '1h'\nperiod = '10m'\n[[vm]]\nname = 'a'",
            3,
            "burst must be shorter than period",
        ),
        ("[profile.p]\nkind = 'web'\ncpu = 120\n[[vm]]\nname = 'a'", 3, "cpu must be a number from 0 to 100"),
        ("[profile.p]\nkind = 'web'\nnet = 'fast'\n[[vm]]\nname = 'a'", 3, "net must be bytes per second"),
        (
            "[[vm]]\nname = 'a'\n[[event]]\nat = '1s'\nvm = 'a'\nevent = 'explode'",
            6,
            "event must be one of crash, hang-on-shutdown",
        ),
        ("[[vm]]\nname = 'a'\n[[event]]\nvm = 'a'\nevent = 'crash'", 3, "event #1 (crash): at is required"),
        ("[[vm]]\nname = 'a'\n[[event]]\nat = '1s'\nevent = 'crash'", 3, "vm is required"),
        ("[[vm]]\nname = 'a'\n[[event]]\nat = 'later'\nvm = 'a'\nevent = 'crash'", 4, "at must be a duration"),
        (
            "[[vm]]\nname = 'a'\n[[event]]\nat = '1s'\nvm = 'b'\nevent = 'crash'",
            5,
            "vm 'b' is not defined by any [[vm]]",
        ),
        ("[[vm]]\nname = 'a'\n[[event]]\nat = '1s'\nvm = 'z*'\nevent = 'crash'", 5, "vm 'z*' matches no VM"),
        (
            "[[vm]]\nname = 'a'\n[[event]]\nat = '1s'\nvm = 'a'\nevent = 'crash'\nrate = 5",
            7,
            "unknown field 'rate' (known: at, vm, event, pick, every, repeat)",
        ),
        ("[[vm]]\nname = 'a'\n[[event]]\nat = '1s'\nvm = 'a'\nevent = 'type'", 3, "text is required"),
        ("[[vm]]\nname = 'a'\n[[event]]\nat = '1s'\nvm = 'a'\nevent = 'crash'\nrepeat = 2", 7, "repeat needs every"),
        (
            "[[vm]]\nname = 'a'\n[[event]]\nat = '1s'\nvm = 'a'\nevent = 'stop'\nforce = 'yes'",
            7,
            "force must be true or false",
        ),
        (
            "[[vm]]\nname = 'a'\n[[event]]\nat = '1s'\nvm = 'a'\nevent = 'fail-next-command'\naction = 'reboot'",
            7,
            "action must be one of start, stop",
        ),
        (
            "[[vm]]\nname = 'a'\n[[event]]\nat = '1s'\nvm = 'a'\nevent = 'pause'\nduration = 0",
            7,
            "duration must be a duration longer than zero",
        ),
        ("[[vm]]\nname = 'x-{1..200000}'", 2, "makes 200000 names; the most is 100000"),
    ],
)
def test_bad_scenarios_name_the_line_and_field(text: str, line: int | None, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "fleet.toml")
    error = info.value
    assert isinstance(error, ValueError)  # what `vmws serve` prints without a traceback
    assert error.line == line, str(error)
    assert str(error).startswith(f"fleet.toml:{line}: " if line else "fleet.toml: ")
    assert message in str(error)


def test_unreadable_and_binary_files_are_scenario_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        load_scenario(tmp_path / "missing.toml")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ScenarioError, match="not UTF-8"):
        load_scenario(binary)


@pytest.mark.parametrize(
    ("value", "rate"), [(1000, 1000.0), ("50MiB/s", 50 * 2**20), ("10MB/s", 10e6), ("512KiB", 512 * 1024.0)]
)
def test_rates(value: object, rate: float) -> None:
    assert parse_rate(value) == rate


def test_brace_expansion() -> None:
    assert expand_braces("web-{001..003}") == ["web-001", "web-002", "web-003"]
    assert expand_braces("n{3..1}") == ["n3", "n2", "n1"]
    assert expand_braces("{a,b}-{1..2}") == ["a-1", "a-2", "b-1", "b-2"]
    assert expand_braces("plain") == ["plain"]
    assert expand_braces("odd{x}") == ["odd{x}"]  # not a range or list: literal, as in bash
    with pytest.raises(ValueError, match=str(MAX_VMS)):
        expand_braces("{1..400}-{1..400}")


_CHAOS = resources.files("simulator").joinpath("scenarios", "chaos.toml").read_text("utf-8").splitlines()
_ASSIGNMENTS = [i for i, line in enumerate(_CHAOS) if " = " in line and not line.startswith("#")]
_VALUES = [
    "5",
    "-1",
    "0",
    "true",
    "1e999",
    "nan",
    '"x"',
    '""',
    '"90s"',
    '"-5s"',
    "[]",
    "[1, 2]",
    "{}",
    "{ a = 1 }",
    '"web-*"',
    '"web-{1..}"',
    '"{1..2}"',
    "[{ name = 1 }]",
    '"\\u0000"',
    "2024-01-01",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_ASSIGNMENTS), st.sampled_from(_VALUES)), min_size=1, max_size=4))
def test_any_value_in_any_field_is_a_scenario_error_or_a_fleet(edits: list[tuple[int, str]]) -> None:
    lines = list(_CHAOS)
    for index, value in edits:
        lines[index] = lines[index].split(" = ", 1)[0] + " = " + value
    try:
        fleet = parse_scenario("\n".join(lines), "fuzz.toml")
    except ScenarioError as exc:
        assert str(exc).startswith("fuzz.toml")
    else:
        assert fleet.vms
