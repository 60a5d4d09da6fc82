"""A simulated VM's screen: tty1 on an 80x25 VGA text console, served over RFB.

| module | owns |
| --- | --- |
| `font.py` | the bitmap font (public domain) and `read_text`, a framebuffer back to text |
| `pixels.py` | RFB pixel formats: a colour as the bytes of a pixel |
| `terminal.py` | the `pyte` terminal tty1 prints on, its rows resolved for drawing |
| `keys.py` | RFB key events (keysyms) as the bytes a Linux console sends |
| `rfb.py` | one RFB 3.8 session, sans-I/O: handshake, messages, updates (Raw, CopyRect) |
| `link.py` | a session over a socket, on a duck-typed event loop |
| `display.py` | the terminal and its viewers: what the machine holds |

Like the rest of the simulator this imports no event loop: ``link`` is handed one.
"""
