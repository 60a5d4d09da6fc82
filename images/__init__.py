"""Guest image recipes for the libvirt harness.

``images.tiny`` builds, in seconds and from distribution packages only, a boot pair
(Debian kernel + busybox-static initramfs) with a serial-console login, cached by
content hash. ``images.cloud`` knows a manifest of real cloud images with pinned
SHA-256 sums, downloads and verifies them, makes qcow2 overlays and cloud-init NoCloud
seeds (used by the nightly KVM job). Every failure is an ``ImageError`` whose message
says what to do about it.
"""

from __future__ import annotations

from images.errors import ImageError

__all__ = ["ImageError"]
