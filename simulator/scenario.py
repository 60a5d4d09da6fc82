"""The scenario file format: TOML text in, a ``FleetSpec`` out, or an error naming the
file, the line and the field.

The format (documented with examples in ``docs/simulator.md``)::

    [scenario]                    # optional: name, description
    [personality.NAME]            # custom guests: base (a built-in), os_name, kernel, users, files...
    [profile.NAME]                # metrics curves: kind (idle|web|batch|leak), cpu, memory, net, disk...
    [template.NAME]               # shared VM fields: status, memory_mib, vcpus, personality, metrics, timings
    [[vm]]                        # name (brace ranges: "web-{001..500}"), template, and any template field
    [[event]]                     # at, vm (name, glob or range), event, and the event's own fields

Every problem is a ``ScenarioError`` (a ``ValueError``, so ``vmws serve`` prints it
without a traceback) whose text starts ``FILE:LINE:`` when the line is known. TOML
parsers do not report where a value sits, so the line is found afterwards by scanning
the text for the table header and the field's key (only when there is an error).
"""

from __future__ import annotations

import fnmatch
import functools
import itertools
import math
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from importlib import resources
from typing import Any

from simulator import fleet as _fleet
from simulator.fleet import (
    PROFILES,
    EventKind,
    FleetSpec,
    Init,
    MetricsProfile,
    Personality,
    ProfileKind,
    TimelineEvent,
    Timings,
    User,
    VMSpec,
)
from simulator.personalities import ALIASES, BUILTIN, builtin
from vmws.backend import Action, VMStatus
from vmws.durations import parse_duration

__all__ = [
    "ScenarioError",
    "demo_fleet",
    "MAX_VMS",
    "parse_scenario",
    "load_scenario",
    "parse_rate",
    "expand_braces",
]

MAX_VMS = 100_000
_MAX_EVENTS = 10_000

_TOP_KEYS = ("scenario", "personality", "profile", "template", "vm", "event")
_SCENARIO_KEYS = ("name", "description")
_TEMPLATE_KEYS = ("status", "memory_mib", "vcpus", "personality", "metrics", "timings")
_VM_KEYS = ("name", "template", *_TEMPLATE_KEYS)
_TIMING_KEYS = tuple(f.name for f in fields(Timings))
_PERSONALITY_KEYS = (
    "base", "os_name", "kernel", "kernel_build", "hostname", "issue", "welcome", "motd",
    "prompt", "tty", "init", "users", "files",
)  # fmt: skip
_PROFILE_KEYS = ("kind", "cpu", "memory", "net", "disk", "period", "burst")
_EVENT_COMMON = ("at", "vm", "event", "pick", "every", "repeat")
_EVENT_EXTRA: dict[EventKind, tuple[str, ...]] = {
    EventKind.CRASH: (),
    EventKind.HANG_ON_SHUTDOWN: (),
    EventKind.FAIL_NEXT_COMMAND: ("message", "action", "times"),
    EventKind.STUCK_BOOTING: (),
    EventKind.PAUSE: ("duration",),
    EventKind.DISK_BURST: ("duration", "rate"),
    EventKind.NETWORK_BURST: ("duration", "rate"),
    EventKind.START: (),
    EventKind.STOP: ("force",),
    EventKind.RESTART: ("force",),
    EventKind.SUSPEND: (),
    EventKind.RESUME: (),
    EventKind.TYPE: ("text",),
}
_USER_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class ScenarioError(ValueError):
    """A scenario file problem: ``FILE:LINE: what: problem`` (the line when known)."""

    def __init__(self, source: str, line: int | None, message: str) -> None:
        self.source = source
        self.line = line
        self.problem = message
        super().__init__(f"{source}:{line}: {message}" if line else f"{source}: {message}")


# Values: durations, rates, name ranges

_RATE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*(?:/s)?\s*$")
_RATE_UNITS = {None: 1, "B": 1, "KB": 10**3, "KiB": 2**10, "MB": 10**6, "MiB": 2**20, "GB": 10**9, "GiB": 2**30}


def parse_rate(value: Any) -> float:
    """Bytes per second: ``50000``, ``"50MiB/s"``, ``"10MB/s"``, ``"512KiB"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        rate = float(value)
    elif isinstance(value, str) and (match := _RATE_RE.match(value)):
        rate = float(match.group(1)) * _RATE_UNITS[match.group(2)]
    else:
        raise ValueError(f'must be bytes per second such as 50000 or "50MiB/s", got {value!r}')
    if not math.isfinite(rate) or rate < 0:
        raise ValueError(f"must be zero or more bytes per second, got {value!r}")
    return rate


_BRACE = re.compile(r"\{([^{}]*)\}")
_RANGE = re.compile(r"^(-?\d+)\.\.(-?\d+)$")


def _brace_choices(body: str) -> list[str] | None:
    match = _RANGE.match(body)
    if match:
        a, b = match.group(1), match.group(2)
        first, last = int(a), int(b)
        # bash pads when an end is written with a leading zero: {001..500}
        padded = any(len(s.lstrip("-")) > 1 and s.lstrip("-")[0] == "0" for s in (a, b))
        width = max(len(a), len(b)) if padded else 0
        step = 1 if last >= first else -1
        count = abs(last - first) + 1
        if count > MAX_VMS:
            raise ValueError(f"the range {{{body}}} makes {count} names; the most is {MAX_VMS}")
        return [f"{n:0{width}d}" for n in range(first, last + step, step)]
    if "," in body:
        return body.split(",")
    return None


def expand_braces(pattern: str) -> list[str]:
    """Brace expansion as bash does it: ``web-{001..003}`` → web-001, web-002, web-003;
    ``{a,b}-{1..2}`` → a-1, a-2, b-1, b-2. Anything else in braces stays literal."""
    pieces: list[list[str]] = []
    pos = 0
    total = 1
    for match in _BRACE.finditer(pattern):
        choices = _brace_choices(match.group(1))
        if choices is None:
            continue
        pieces.append([pattern[pos : match.start()]])
        pieces.append(choices)
        total *= len(choices)
        if total > MAX_VMS:
            raise ValueError(f"{pattern!r} makes more than {MAX_VMS} names")
        pos = match.end()
    pieces.append([pattern[pos:]])
    return ["".join(parts) for parts in itertools.product(*pieces)]


# Finding lines (only when reporting an error)

_ARRAY_HEADER = re.compile(r"^\s*\[\[\s*([^\[\]]+?)\s*\]\]")
_TABLE_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]")

Owner = tuple[str, str]  # ("vm", "3") for the third [[vm]], ("template", "web"), ("scenario", "")


def _key_path(header: str) -> list[str]:
    parts = re.findall(r'"([^"]*)"|\'([^\']*)\'|([^."\'\s]+)', header)
    return [next(p for p in part if p) if any(part) else "" for part in parts]


class _Locator:
    """Which table each line of the file belongs to, and where a key is written."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()
        self._index: dict[Owner, list[int]] = {}
        counts = {"vm": 0, "event": 0}
        owner: Owner | None = None
        for number, line in enumerate(self._lines):
            array = _ARRAY_HEADER.match(line)
            table = None if array else _TABLE_HEADER.match(line)
            if array:
                path = _key_path(array.group(1))
                if path and path[0] in counts and len(path) == 1:
                    counts[path[0]] += 1
                    owner = (path[0], str(counts[path[0]]))
                else:
                    owner = ("other", array.group(1))
            elif table:
                path = _key_path(table.group(1))
                if path and path[0] in counts and owner is not None and owner[0] == path[0]:
                    pass  # [vm.timings] belongs to the [[vm]] above it
                elif len(path) >= 2 and path[0] in ("template", "profile", "personality"):
                    owner = (path[0], path[1])
                elif path == ["scenario"]:
                    owner = ("scenario", "")
                else:
                    owner = ("other", table.group(1))
            if owner is not None:
                self._index.setdefault(owner, []).append(number)

    def line(self, owner: Owner, key: str | None) -> int | None:
        numbers = self._index.get(owner)
        if not numbers:
            return None
        if key is not None:
            quoted = re.escape(key)
            pattern = re.compile(rf'(?:^|[\s{{,])(?:{quoted}|"{quoted}"|\'{quoted}\')\s*=')
            for i in numbers:
                if pattern.search(self._lines[i].split("#", 1)[0]):
                    return i + 1
        return numbers[0] + 1


# The parser


@dataclass(frozen=True, slots=True)
class _Ctx:
    """Where a value came from, for error messages."""

    owner: Owner
    where: str


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self._locator: _Locator | None = None
        self.personalities: dict[str, Personality] = {}
        self.profiles: dict[str, MetricsProfile] = dict(PROFILES)
        self.templates: dict[str, dict[str, Any]] = {}

    def error(self, ctx: _Ctx | None, key: str | None, message: str) -> ScenarioError:
        line = None
        if ctx is not None:
            if self._locator is None:
                self._locator = _Locator(self.text)
            line = self._locator.line(ctx.owner, key)
        text = f"{ctx.where}: {message}" if ctx else message
        return ScenarioError(self.source, line, text)

    def check_keys(self, ctx: _Ctx, raw: Mapping[str, Any], known: Iterable[str], what: str = "field") -> None:
        allowed = tuple(known)
        for key in raw:
            if key not in allowed:
                raise self.error(ctx, key, f"unknown {what} {key!r} (known: {', '.join(allowed)})")

    def table(self, ctx: _Ctx, value: Any, what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(ctx, None, f"{what} must be a table, got {_show(value)}")
        return value

    def value(self, ctx: _Ctx, key: str, convert: Callable[[Any], Any], value: Any) -> Any:
        try:
            return convert(value)
        except ValueError as exc:
            raise self.error(ctx, key, f"{key} {exc}") from None

    # Whole file

    def parse(self) -> FleetSpec:
        try:
            data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
            line = int(match.group(1)) if match else None
            raise ScenarioError(self.source, line, f"not valid TOML: {exc}") from None
        top = _Ctx(("other", ""), "scenario")
        for key in data:
            if key not in _TOP_KEYS:
                raise ScenarioError(
                    self.source,
                    None,
                    f"unknown top-level key {key!r} (known: [scenario], [personality.NAME], [profile.NAME], "
                    "[template.NAME], [[vm]], [[event]])",
                )
        name, description = self.scenario_table(data.get("scenario", {}))
        for pid, raw in self.table(top, data.get("personality", {}), "[personality]").items():
            self.personalities[pid] = self.personality(pid, raw)
        for pid, raw in self.table(top, data.get("profile", {}), "[profile]").items():
            self.profiles[pid] = self.profile(pid, raw)
        for tid, raw in self.table(top, data.get("template", {}), "[template]").items():
            ctx = _Ctx(("template", tid), f"template {tid!r}")
            raw = self.table(ctx, raw, f"[template.{tid}]")
            self.check_keys(ctx, raw, _TEMPLATE_KEYS)
            self.templates[tid] = {key: self.vm_field(ctx, key, value) for key, value in raw.items()}
        raw_vms = data.get("vm")
        if not isinstance(raw_vms, list) or not raw_vms:
            raise ScenarioError(self.source, None, "no VMs: add at least one [[vm]] table with a name")
        vms: list[VMSpec] = []
        defined: dict[str, int] = {}
        for index, raw in enumerate(raw_vms):
            for spec in self.vm_entry(index, raw):
                if spec.name in defined:
                    ctx = _Ctx(("vm", str(index + 1)), f"vm {spec.name!r}")
                    raise self.error(ctx, "name", f"name is defined twice (first by [[vm]] #{defined[spec.name] + 1})")
                defined[spec.name] = index
                vms.append(spec)
            if len(vms) > MAX_VMS:
                raise ScenarioError(self.source, None, f"more than {MAX_VMS} VMs")
        raw_events = data.get("event", [])
        if not isinstance(raw_events, list):
            raise ScenarioError(self.source, None, "event must be an array of [[event]] tables")
        if len(raw_events) > _MAX_EVENTS:
            raise ScenarioError(self.source, None, f"more than {_MAX_EVENTS} events")
        names = sorted(defined)
        events = tuple(self.event(i, raw, defined, names) for i, raw in enumerate(raw_events))
        return FleetSpec(vms=tuple(vms), events=events, name=name, description=description)

    def scenario_table(self, raw: Any) -> tuple[str, str]:
        ctx = _Ctx(("scenario", ""), "[scenario]")
        raw = self.table(ctx, raw, "[scenario]")
        self.check_keys(ctx, raw, _SCENARIO_KEYS)
        out = []
        for key in _SCENARIO_KEYS:
            value = raw.get(key, "")
            if not isinstance(value, str):
                raise self.error(ctx, key, f"{key} must be a string, got {_show(value)}")
            out.append(value)
        return out[0], out[1]

    # Personalities and profiles

    def personality(self, pid: str, raw: Any) -> Personality:
        ctx = _Ctx(("personality", pid), f"personality {pid!r}")
        raw = self.table(ctx, raw, f"[personality.{pid}]")
        self.check_keys(ctx, raw, _PERSONALITY_KEYS)
        base_name = raw.get("base", "ubuntu-22.04")
        base = builtin(base_name) if isinstance(base_name, str) else None
        if base is None:
            choices = ", ".join([*BUILTIN, *ALIASES])
            raise self.error(ctx, "base", f"base must be a built-in personality ({choices}), got {_show(base_name)}")
        changes: dict[str, Any] = {"name": pid}
        for key in ("os_name", "kernel", "kernel_build", "hostname", "issue", "welcome", "motd", "prompt", "tty"):
            if key in raw:
                value = raw[key]
                if not isinstance(value, str) or (key in ("os_name", "kernel", "hostname", "tty") and not value):
                    raise self.error(ctx, key, f"{key} must be a non-empty string, got {_show(value)}")
                changes[key] = value
        if "init" in raw:
            changes["init"] = self.value(ctx, "init", lambda v: _enum(Init, v), raw["init"])
        if "users" in raw:
            changes["users"] = self.users(ctx, raw["users"])
        if "files" in raw:
            files = dict(base.files)
            for path, content in self.table(ctx, raw["files"], "files").items():
                if not path.startswith("/") or os.path.normpath(path) != path or "\x00" in path:
                    raise self.error(ctx, path, f"files: {path!r} must be an absolute, normalised path")
                if not isinstance(content, str):
                    raise self.error(ctx, path, f"files: the content of {path!r} must be a string")
                files[path] = content
            changes["files"] = tuple(files.items())
        return replace(base, **changes)

    def users(self, ctx: _Ctx, raw: Any) -> tuple[User, ...]:
        if not isinstance(raw, list) or not raw:
            raise self.error(ctx, "users", "users must be a non-empty array of {name, password, sudo} tables")
        users: list[User] = []
        for item in raw:
            if not isinstance(item, dict):
                raise self.error(ctx, "users", f"users: each entry must be a table, got {_show(item)}")
            self.check_keys(ctx, item, ("name", "password", "sudo"), "user field")
            name, password, sudo = item.get("name"), item.get("password"), item.get("sudo", False)
            if not isinstance(name, str) or not _USER_RE.match(name):
                raise self.error(ctx, "users", f"users: name must be a Unix user name, got {_show(name)}")
            if not isinstance(password, str):
                raise self.error(ctx, "users", f"users: {name!r} needs a password string")
            if not isinstance(sudo, bool):
                raise self.error(ctx, "sudo", f"users: {name!r}: sudo must be true or false, got {_show(sudo)}")
            if any(u.name == name for u in users):
                raise self.error(ctx, "users", f"users: {name!r} is listed twice")
            users.append(User(name, password, sudo))
        return tuple(users)

    def profile(self, pid: str, raw: Any) -> MetricsProfile:
        ctx = _Ctx(("profile", pid), f"profile {pid!r}")
        raw = self.table(ctx, raw, f"[profile.{pid}]")
        self.check_keys(ctx, raw, _PROFILE_KEYS)
        kind_text = raw.get("kind", pid if pid in PROFILES else None)
        if kind_text is None:
            raise self.error(ctx, None, f"kind is required ({', '.join(k.value for k in ProfileKind)})")
        kind = self.value(ctx, "kind", lambda v: _enum(ProfileKind, v), kind_text)
        base = PROFILES[kind.value]
        cpu = self.value(ctx, "cpu", lambda v: _number(v, 0.0, 100.0), raw.get("cpu", base.cpu))
        memory = self.value(ctx, "memory", lambda v: _number(v, 0.01, 0.98), raw.get("memory", base.memory))
        net = self.value(ctx, "net", parse_rate, raw.get("net", base.net))
        disk = self.value(ctx, "disk", parse_rate, raw.get("disk", base.disk))
        period = self.value(ctx, "period", _positive_duration, raw.get("period", base.period))
        burst = self.value(ctx, "burst", parse_duration, raw.get("burst", base.burst or period / 5))
        if kind is ProfileKind.BATCH and not burst < period:
            raise self.error(ctx, "burst", f"burst must be shorter than period ({period:g} s), got {burst:g} s")
        return MetricsProfile(pid, kind, cpu, memory, net, disk, period, burst)

    # VMs

    def vm_field(self, ctx: _Ctx, key: str, value: Any) -> Any:
        """One validated template/VM field."""
        if key == "status":
            return self.value(ctx, key, lambda v: _enum(VMStatus, v), value)
        if key == "memory_mib":
            return self.value(ctx, key, lambda v: _integer(v, 1, 1 << 20), value)
        if key == "vcpus":
            return self.value(ctx, key, lambda v: _integer(v, 1, 512), value)
        if key == "personality":
            found = self.personalities.get(value) if isinstance(value, str) else None
            found = found or (builtin(value) if isinstance(value, str) else None)
            if found is None:
                known = ", ".join([*self.personalities, *BUILTIN])
                raise self.error(
                    ctx, key, f"personality must name a [personality.NAME] or a built-in ({known}), got {_show(value)}"
                )
            return found
        if key == "metrics":
            profile = self.profiles.get(value) if isinstance(value, str) else None
            if profile is None:
                raise self.error(
                    ctx, key, f"metrics must name a profile ({', '.join(self.profiles)}), got {_show(value)}"
                )
            return profile
        # timings: a table of durations, merged key by key with the template's
        table = self.table(ctx, value, "timings")
        self.check_keys(ctx, table, _TIMING_KEYS, "timing")
        return {
            k: self.value(ctx, k, _positive_duration if k.endswith("timeout") else parse_duration, v)
            for k, v in table.items()
        }

    def vm_entry(self, index: int, raw: Any) -> list[VMSpec]:
        ctx = _Ctx(("vm", str(index + 1)), f"vm #{index + 1}")
        raw = self.table(ctx, raw, "each [[vm]] entry")
        pattern = raw.get("name")
        if not isinstance(pattern, str) or not pattern:
            raise self.error(
                ctx, "name", f'name is required: a string such as "web-1" or "web-{{001..500}}", got {_show(pattern)}'
            )
        ctx = _Ctx(ctx.owner, f"vm {pattern!r}")
        self.check_keys(ctx, raw, _VM_KEYS)
        names = self.value(ctx, "name", expand_braces, pattern)
        for name in names:
            if not _fleet.valid_name(name):
                raise self.error(
                    ctx, "name", f"name {name!r} must be 1-63 printable characters without '/' or surrounding spaces"
                )
        values: dict[str, Any] = {}
        if "template" in raw:
            template = raw["template"]
            if not isinstance(template, str) or template not in self.templates:
                known = ", ".join(self.templates) or "none defined"
                raise self.error(
                    ctx, "template", f"template must name a [template.NAME] ({known}), got {_show(template)}"
                )
            values.update(self.templates[template])
        for key, value in raw.items():
            if key in ("name", "template"):
                continue
            checked = self.vm_field(ctx, key, value)
            values[key] = {**values.get("timings", {}), **checked} if key == "timings" else checked
        timings = Timings(**values["timings"]) if values.get("timings") else _DEFAULT_TIMINGS
        for nominal, limit in (("boot", "restart_timeout"), ("shutdown", "shutdown_timeout")):
            # transitions are jittered by up to +20 %: the slowest must still beat its timeout
            # (a graceful restart asked for at power-on waits for the whole boot)
            if getattr(timings, nominal) * 1.2 >= getattr(timings, limit):
                raise self.error(
                    ctx,
                    limit if limit in values.get("timings", {}) else nominal,
                    f"timings: {nominal} ({getattr(timings, nominal):g} s, up to 20 % more with jitter) "
                    f"must stay under {limit} ({getattr(timings, limit):g} s)",
                )
        # one personality, timings and profile object shared by every VM of this entry
        shared = {
            "status": values.get("status", VMStatus.RUNNING),
            "memory_mib": values.get("memory_mib", 2048),
            "vcpus": values.get("vcpus", 2),
            "personality": values.get("personality", _DEFAULT_PERSONALITY),
            "timings": timings,
            "profile": values.get("metrics", PROFILES["idle"]),
        }
        return [VMSpec(name, **shared) for name in names]

    # The timeline

    def event(self, index: int, raw: Any, defined: Mapping[str, int], names: list[str]) -> TimelineEvent:
        ctx = _Ctx(("event", str(index + 1)), f"event #{index + 1}")
        raw = self.table(ctx, raw, "each [[event]] entry")
        kind_text = raw.get("event")
        kind = self.value(ctx, "event", lambda v: _enum(EventKind, v), kind_text)
        ctx = _Ctx(ctx.owner, f"event #{index + 1} ({kind.value})")
        self.check_keys(ctx, raw, (*_EVENT_COMMON, *_EVENT_EXTRA[kind]))
        if "at" not in raw:
            raise self.error(ctx, None, 'at is required: when, after the start, e.g. at = "90s"')
        if "vm" not in raw:
            raise self.error(ctx, None, 'vm is required: a name, a glob such as "web-*" or a range')
        at = self.value(ctx, "at", parse_duration, raw["at"])
        selectors = raw["vm"] if isinstance(raw["vm"], list) else [raw["vm"]]
        targets: list[str] = []
        for selector in selectors:
            if not isinstance(selector, str) or not selector:
                raise self.error(
                    ctx, "vm", f"vm must be a name, glob or range (or a list of them), got {_show(selector)}"
                )
            targets.extend(self.select(ctx, selector, defined, names))
        vms = tuple(dict.fromkeys(targets))  # in order, once each
        params: dict[str, Any] = {}
        if "pick" in raw:
            params["pick"] = self.value(ctx, "pick", lambda v: _integer(v, 1, MAX_VMS), raw["pick"])
        if "every" in raw:
            params["every"] = self.value(ctx, "every", _positive_duration, raw["every"])
        if "repeat" in raw:
            if "every" not in raw:
                raise self.error(ctx, "repeat", "repeat needs every (how often)")
            params["repeat"] = self.value(ctx, "repeat", lambda v: _integer(v, 1, 1_000_000), raw["repeat"])
        if "force" in raw:
            if not isinstance(raw["force"], bool):
                raise self.error(ctx, "force", f"force must be true or false, got {_show(raw['force'])}")
            params["force"] = raw["force"]
        if "duration" in raw:
            params["duration"] = self.value(ctx, "duration", _positive_duration, raw["duration"])
        if "rate" in raw:
            params["rate"] = self.value(ctx, "rate", parse_rate, raw["rate"])
        if "message" in raw:
            if not isinstance(raw["message"], str) or not raw["message"]:
                raise self.error(ctx, "message", f"message must be a non-empty string, got {_show(raw['message'])}")
            params["message"] = raw["message"]
        if "action" in raw:
            params["action"] = self.value(ctx, "action", lambda v: _enum(Action, v), raw["action"])
        if "times" in raw:
            params["times"] = self.value(ctx, "times", lambda v: _integer(v, 1, 1_000_000), raw["times"])
        if kind is EventKind.TYPE:
            text = raw.get("text")
            if not isinstance(text, str) or not text:
                raise self.error(
                    ctx, "text" if "text" in raw else None, 'text is required: the keys to type, e.g. text = "admin\\n"'
                )
            params["text"] = text
        selector_text = ", ".join(str(s) for s in selectors)
        line = None
        if self._locator is None:
            self._locator = _Locator(self.text)
        line = self._locator.line(ctx.owner, None)
        return TimelineEvent(at=at, kind=kind, vms=vms, selector=selector_text, line=line, **params)

    def select(self, ctx: _Ctx, selector: str, defined: Mapping[str, int], names: list[str]) -> list[str]:
        if any(c in selector for c in "*?["):
            found = fnmatch.filter(names, selector)
            if not found:
                raise self.error(ctx, "vm", f"vm {selector!r} matches no VM")
            return found
        expanded: list[str] = self.value(ctx, "vm", expand_braces, selector)
        for name in expanded:
            if name not in defined:
                raise self.error(ctx, "vm", f"vm {name!r} is not defined by any [[vm]]")
        return expanded


_DEFAULT_TIMINGS = Timings()
_DEFAULT_PERSONALITY = Personality()


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _enum(cls: Any, value: Any) -> Any:
    try:
        return cls(value)
    except ValueError:
        choices = ", ".join(member.value for member in cls)
        raise ValueError(f"must be one of {choices}; got {_show(value)}") from None


def _integer(value: Any, low: int, high: int) -> int:
    # bool is an int in Python; a TOML `true` here is a mistake, not 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"must be an integer from {low} to {high}, got {_show(value)}")
    return value


def _number(value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"must be a number from {low:g} to {high:g}, got {_show(value)}")
    return float(value)


def _positive_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"must be a duration longer than zero, got {_show(value)}")
    return seconds


def parse_scenario(text: str, source: str = "<scenario>") -> FleetSpec:
    """Parse scenario TOML text; a ``ScenarioError`` names ``source``, the line and the field."""
    return _Parser(text, source).parse()


@functools.cache
def demo_fleet() -> FleetSpec:
    """The built-in demo fleet (``simulator/scenarios/demo.toml``); parsed once, it is immutable."""
    text = resources.files("simulator").joinpath("scenarios/demo.toml").read_text("utf-8")
    return parse_scenario(text, "demo.toml")


def load_scenario(path: str | os.PathLike[str]) -> FleetSpec:
    """Read and parse a scenario file; any problem is a ``ScenarioError`` naming it."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ScenarioError(source, None, f"cannot read scenario file: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(source, None, "scenario file is not UTF-8 text") from None
    return parse_scenario(text, source)
