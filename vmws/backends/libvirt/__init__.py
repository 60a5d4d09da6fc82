"""The libvirt backend: real QEMU/KVM guests behind the Backend seam.

``backend`` (the ``LibvirtBackend``: VM records, actions, events), ``connection`` (the
libvirt connection, its thread pool and reconnects), ``console`` (a serial console
stream), ``states`` (libvirt state → status), ``stats`` + ``metrics`` (statistics →
``MetricsSample``), ``translate`` (libvirt errors → ``vmws.errors``), ``aio`` (libvirt's
event loop on asyncio). libvirt-python is imported only by these modules, and only when
``--backend libvirt`` is asked for: this package's ``__init__`` imports nothing.
Booting test guests is ``harness``' job, not this package's.
"""
