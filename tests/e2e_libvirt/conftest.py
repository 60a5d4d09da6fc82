"""Collect the cloud-image tests only in the nightly KVM job (``tox -e kvm``), and hold
libvirtd steady during every test marked ``libvirt`` (``tests.harness.daemon``).

The cloud-image tests download real cloud images (hundreds of MiB) and boot them under
KVM; the CI machine has neither the network nor working KVM. Not collected (rather
than skipped) elsewhere, so CI's libvirt suite shows no skips.
"""

from __future__ import annotations

import os

from tests.harness.daemon import libvirtd_steady

__all__ = ["libvirtd_steady"]

collect_ignore = [] if os.environ.get("VMWS_TEST_CLOUD_IMAGES") else ["test_cloud_images.py"]
