"""Real VMs through libvirt: the ``LibvirtBackend``, guest boot helpers, the harness CLI.

libvirt-python is imported only inside this package (and only by the modules that
need it), so ``vmws`` runs without it unless ``--backend libvirt`` is asked for.
"""
