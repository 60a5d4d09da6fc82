"""Guest image recipes for the libvirt harness.

``images.tiny`` builds, in seconds and from distribution packages only, a boot pair
(Debian kernel + busybox-static initramfs) with a serial-console login, cached by
content hash. ``images.cloud`` knows a manifest of real cloud images (dated releases),
downloads them and verifies each against its release's published, signed checksum file
(``images.release``, ``images.fetch``), makes qcow2 overlays and cloud-init NoCloud
seeds (used by the nightly KVM job). Every failure is an ``ImageError`` whose message
says what to do about it.
"""

from __future__ import annotations

from images.errors import ImageError

__all__ = ["ImageError"]
