"""The tiny image recipe, built for real from this host's kernel and busybox-static."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from images.cpio import EntryKind, read_newc
from images.errors import ImageError
from images.tiny import build_tiny, kernel_cmdline
from images.tiny.recipe import GUEST_MODULES, find_kernel, module_closure
from tests.harness.hosts import in_ci


@pytest.fixture(scope="module")
def host_inputs() -> None:
    try:
        find_kernel()
    except ImageError as exc:
        if in_ci():
            pytest.fail(f"CI must build the tiny image: {exc}")
        pytest.skip(f"{exc}")
    if shutil.which("busybox") is None:
        if in_ci():
            pytest.fail("CI must build the tiny image: busybox-static missing")
        pytest.skip("busybox-static missing; to enable: sudo bash scripts/install-libvirt.sh")


def test_build_is_cached_by_content(host_inputs: None, tmp_path: Path) -> None:
    first = build_tiny(cache=tmp_path)
    mtime = first.initrd.stat().st_mtime_ns
    again = build_tiny(cache=tmp_path)
    assert again == first
    assert again.initrd.stat().st_mtime_ns == mtime, "a cache hit must not rebuild"
    other = build_tiny(cache=tmp_path, password="s3cret-other")
    assert other.key != first.key
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.key, other.key])


def test_initramfs_holds_init_login_and_modules(host_inputs: None, tmp_path: Path) -> None:
    image = build_tiny(cache=tmp_path, password="pw-for-test")
    entries = {e.path: e for e in read_newc(image.initrd.read_bytes())}
    assert entries["init"].kind is EntryKind.SYMLINK and entries["init"].data == b"/bin/busybox"
    assert entries["bin/busybox"].mode == 0o755
    gettys = [line for line in entries["etc/inittab"].data.decode().splitlines() if "/sbin/getty" in line]
    # One login on the serial line, one on the VGA text console that the screen shows.
    assert [line.split(":", 1)[0] for line in gettys] == ["ttyS0", "tty1"]
    assert all("-l /usr/sbin/vmws-login" in line for line in gettys)
    assert entries["etc/rc"].mode == 0o755 and entries["usr/sbin/vmws-login"].mode == 0o755
    shadow = entries["etc/shadow"].data.decode()
    assert shadow.count("admin:$6$") == 1 and "pw-for-test" not in shadow
    assert entries["etc/shadow"].mode == 0o600
    loaded = entries["etc/modules"].data.decode().replace("-", "_").split()
    for module in GUEST_MODULES:
        assert f"{module}.ko" in loaded
        assert any(p.replace("-", "_") == f"lib/modules/{module}.ko" for p in entries)
    # dependencies load first
    assert loaded.index("virtio.ko") < loaded.index("virtio_pci.ko") < loaded.index("virtio_net.ko")


def test_module_closure_orders_dependencies_first(host_inputs: None) -> None:
    names = [p.name for p in module_closure(find_kernel().modules_dir, ("virtio_net",))]
    assert names[-1] == "virtio_net.ko"
    assert {"virtio.ko", "virtio_ring.ko", "failover.ko", "net_failover.ko"} <= set(names)


def test_missing_kernel_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="apt-get install linux-image-amd64"):
        build_tiny(boot_dir=tmp_path, cache=tmp_path / "cache")


def test_dynamic_busybox_is_refused(host_inputs: None, tmp_path: Path) -> None:
    dynamic = Path("/bin/sh").resolve()  # a dynamically linked ELF on any Debian
    with pytest.raises(ImageError, match="busybox-static"):
        build_tiny(busybox=dynamic, cache=tmp_path)


def test_no_disk_space_says_what_to_do(host_inputs: None, tmp_path: Path) -> None:
    from images.cache import ensure_free_space

    with pytest.raises(ImageError, match="free some space"):
        ensure_free_space(tmp_path, 2**62, "the tiny image")


def test_cmdline_carries_the_hostname_and_refuses_bad_names() -> None:
    assert "vmws.hostname=web-1" in kernel_cmdline("web-1")
    consoles = [arg for arg in kernel_cmdline("web-1").split() if arg.startswith("console=")]
    # The VGA console (the VNC screen) gets the kernel's messages too; ttyS0 stays the
    # last one, /dev/console, so init and the serial login behave as before.
    assert consoles == ["console=tty0", "console=ttyS0,115200"]
    assert "vmws.crash_after=2" in kernel_cmdline("web-1", crash_after=2.0)
    for bad in ("", "-x", "a b", "a/b", "x" * 64):
        with pytest.raises(ImageError):
            kernel_cmdline(bad)
