"""Test guests for the libvirt backend: build and boot them, log in, check the host.

``guest`` and ``domain`` define and boot tiny (or cloud) QEMU guests, ``login`` waits for
their getty, ``doctor`` says what this host lacks, ``accel`` picks KVM or TCG, ``cli`` is
``python -m harness``. The production backend is ``vmws.backends.libvirt``. libvirt-python
is imported only by the modules that need it.
"""
