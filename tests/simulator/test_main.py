"""``python -m simulator``: check, run and bench, as a user types them."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from simulator.__main__ import main
from simulator.bench import write_fleet
from simulator.scenario import load_scenario

CHAOS = str(resources.files("simulator").joinpath("scenarios", "chaos.toml"))


def test_check_reports_each_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[vm]]\nname = "a"\n\n[[event]]\nat = "1m"\nvm = "a"\nevent = "melt"\n')
    assert main(["check", CHAOS, str(bad)]) == 1
    out, err = capsys.readouterr()
    assert out == f"{CHAOS}: ok: scenario 'chaos': 13 VMs (12 running, 1 stopped), 11 timeline events\n"
    assert err.startswith(f"{bad}:7: event #1: event must be one of crash, hang-on-shutdown,")


def test_run_prints_the_timeline_and_the_final_state(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", CHAOS, "--until", "10m", "--seed", "7", "--console", "web-002"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert (
        lines[0] == "scenario 'chaos': 13 VMs (12 running, 1 stopped), 11 timeline events; seed 7; until 00:10:00.000"
    )
    assert "00:01:30.000  web-007          status   running -> error" in lines
    assert "00:03:30.000  web-003          fault    graceful stop forced after 1min 30s" in lines
    assert "final state: 11 running, 1 stopped, 1 error" in lines
    assert any(line.startswith("  web-007              error      since 00:01:30.000") for line in lines)
    console = out.split("--- console of web-002 ---\n", 1)[1]
    assert "admin@web-002:~$ seq 5\n1\n2\n3\n4\n5\nadmin@web-002:~$ " in console
    # the same again: byte for byte
    assert main(["run", CHAOS, "--until", "10m", "--seed", "7", "--console", "web-002"]) == 0
    assert capsys.readouterr().out == out


def test_run_of_a_big_fleet_lists_only_what_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "big.toml"
    path.write_text('[[vm]]\nname = "n-{001..200}"\n[[event]]\nat = "5s"\nvm = "n-1*"\npick = 3\nevent = "crash"\n')
    assert main(["run", str(path), "--until", "1m"]) == 0
    out = capsys.readouterr().out
    assert "final state: 197 running, 3 error\n(the 3 VMs that changed; --all lists all 200)\n" in out


def test_run_refuses_unknown_consoles_and_bad_durations(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", CHAOS, "--console", "nope"]) == 2
    assert "--console nope: no such VM" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["run", CHAOS, "--until", "soon"])
    assert info.value.code == 2
    assert "argument --until: must be a duration such as" in capsys.readouterr().err


def test_the_module_runs_and_never_shows_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[[vm]\n")
    for args in (["check", str(bad)], ["run", str(bad)], ["check", str(tmp_path / "missing.toml")]):
        result = subprocess.run([sys.executable, "-m", "simulator", *args], capture_output=True, text=True, timeout=60)
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr and result.stderr.startswith(str(tmp_path))


def test_bench_fleets_parse_the_same_in_both_forms(tmp_path: Path) -> None:
    templated = load_scenario(write_fleet(tmp_path, 120, templated=True))
    plain = load_scenario(write_fleet(tmp_path, 120, templated=False))
    assert [vm.name for vm in templated.vms] == [vm.name for vm in plain.vms]
    assert templated.vms[0].name == "vm-001" and len(plain.vms) == 120


def test_bench_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--vms", "300", "--no-serve"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("machine: ")
    assert "sample all 300 (engine): best" in out and "B per VM held by the machines" in out
    assert "fleet sweep of 300" in out and "metrics history at its bounds" in out
