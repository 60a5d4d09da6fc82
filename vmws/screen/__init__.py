"""The graphical console: a VM's screen (RFB, RFC 6143) relayed over a binary WebSocket.

- ``rfb``: wire constants and the version strings both sides may send.
- ``vm_handshake``: the gateway as an RFB client of the VM's server (always shared).
- ``viewer_stream``: the browser's side, parsed: the handshake the gateway answers
  itself (security None), then each client message checked, bounded and, for a
  view-only viewer, input dropped.
- ``handler``: ``/ws/vms/{name}/screen``, the WebSocket that joins the two.

docs/protocol.md ("Graphical console (extension)") is the contract.
"""
