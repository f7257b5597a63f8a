"""Telling systemd the service is ready (``Type=notify``), with no dependency.

The protocol is one datagram, ``READY=1``, to the Unix socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means Linux's abstract namespace). Not
under systemd, there is no socket and nothing is sent.
"""

from __future__ import annotations

import os
import socket


def notify(state: str, environ: dict[str, str] | None = None) -> bool:
    """Send ``state`` (``READY=1``, ``STOPPING=1``); False when not run by systemd."""
    address = (environ if environ is not None else os.environ).get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError:
        return False
    return True
