"""Choosing KVM or TCG: explicit choices, the override, and the remembered probe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.accel import _probe_key, probe_kvm_cached, resolve_accel
from harness.domain import Accel


@pytest.fixture
def kernel(tmp_path: Path) -> Path:
    path = tmp_path / "vmlinuz-test"
    path.write_bytes(b"not really a kernel")
    return path


def test_explicit_choices_are_kept(kernel: Path) -> None:
    assert resolve_accel(Accel.TCG, kernel) is Accel.TCG
    assert resolve_accel(Accel.KVM, kernel) is Accel.KVM


def test_environment_overrides_auto(kernel: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMWS_ACCEL", "tcg")
    assert resolve_accel(Accel.AUTO, kernel) is Accel.TCG
    monkeypatch.setenv("VMWS_ACCEL", "kvm")
    assert resolve_accel(Accel.AUTO, kernel) is Accel.KVM


def test_no_kernel_to_probe_with_means_tcg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VMWS_ACCEL", raising=False)
    assert resolve_accel(Accel.AUTO, None) is Accel.TCG


def test_a_remembered_probe_is_not_run_again(kernel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMWS_IMAGE_CACHE", str(tmp_path / "cache" / "images"))
    monkeypatch.delenv("VMWS_ACCEL", raising=False)
    record = tmp_path / "cache" / "kvm-probe.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"key": _probe_key(kernel), "usable": True, "reason": "it booted"}))
    # The file is not a kernel: a real probe could not say "usable"; the record does.
    assert probe_kvm_cached(kernel).usable
    assert resolve_accel(Accel.AUTO, kernel) is Accel.KVM
    # Another kernel (or QEMU, or host) is a different key: the record does not apply.
    record.write_text(json.dumps({"key": "something-else", "usable": True, "reason": "stale"}))
    assert "cached" not in probe_kvm_cached(kernel).reason
