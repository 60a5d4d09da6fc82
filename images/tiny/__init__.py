"""The ``tiny`` guest image: a Debian kernel and a busybox-static initramfs.

See ``images.tiny.recipe``; the files copied into the guest live under ``rootfs/``.
"""

from __future__ import annotations

from images.tiny.recipe import DEFAULT_PASSWORD, TinyImage, build_tiny, kernel_cmdline

__all__ = ["DEFAULT_PASSWORD", "TinyImage", "build_tiny", "kernel_cmdline"]
