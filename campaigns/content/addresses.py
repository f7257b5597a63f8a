"""A client's address as SMTP and the ``To`` header must carry it.

An internationalised domain (``exämple.com``) always has an ASCII form, its
IDNA A-label (``xn--exmple-cua.com``), which every server accepts. A
non-ASCII local part (``jö@…``) has none: it needs the relay's SMTPUTF8
extension (RFC 6531), which the transport asks for, and a message whose
headers may carry UTF-8 (RFC 6532).
"""

from __future__ import annotations

import idna

from campaigns.errors import RebookError


class AddressError(RebookError):
    """An address that no message can be sent to, with the reason."""


def envelope_address(address: str) -> str:
    """``address`` with its domain as an A-label; the local part as it is."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain or any(c.isspace() or c in "<>\r\n" for c in address):
        raise AddressError(f"{address!r} is not an email address")
    if not domain.isascii():
        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError as error:
            raise AddressError(
                f"the domain of {address!r} has no ASCII (IDNA) form: {error}"
            ) from None
    return f"{local}@{domain}"


def needs_smtputf8(address: str) -> bool:
    return not address.isascii()
