"""Unsubscribe tokens: the client's id, signed with the web secret.

A token is ``base64url(client id) . base64url(HMAC-SHA256(secret, id)[:16])``:
it names whom to unsubscribe, and nobody without the secret can make one for
somebody else. Verification compares in constant time, and accepts only the
one spelling rebook writes: base64 would otherwise also decode padded text or
a last character whose unused bits differ, so one link would have variants.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

MAC_BYTES = 16  # 128 bits: far beyond guessing, and a short URL
_PURPOSE = b"rebook-unsubscribe:"


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, client_id: str) -> bytes:
    return hmac.new(secret, _PURPOSE + client_id.encode(), hashlib.sha256).digest()[:MAC_BYTES]


def make_token(secret: bytes, client_id: str) -> str:
    return f"{_encode(client_id.encode())}.{_encode(_mac(secret, client_id))}"


def read_token(secret: bytes, token: str) -> str | None:
    """The client id a genuine token names, or None for anything else."""
    payload, _, signature = token.partition(".")
    try:
        raw_id, given = _decode(payload), _decode(signature)
        client_id = raw_id.decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if _encode(raw_id) != payload or _encode(given) != signature:
        return None
    if not client_id or not hmac.compare_digest(given, _mac(secret, client_id)):
        return None
    return client_id


def unsubscribe_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/unsubscribe/{token}"


# -- VERP: the ledger row a bounce is about, in its envelope recipient --------------------
#
# ``bounces+TOKEN@domain``, TOKEN = the row id in base 36, a dash, and 10 base-32
# characters of HMAC-SHA256 (50 bits). Lower case letters and digits only: some
# mail servers lower-case the local part of what they bounce to. A forged or
# mangled token reads as nothing, and the bounce is matched the other ways.
VERP_MAC = 10
_VERP_PURPOSE = b"rebook-verp:"
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 36)
        digits = _BASE36[digit] + digits
        if not number:
            return digits


def _verp_mac(secret: bytes, row_id: int) -> str:
    digest = hmac.new(secret, _VERP_PURPOSE + str(row_id).encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:VERP_MAC]


def verp_token(secret: bytes, row_id: int) -> str:
    return f"{_base36(row_id)}-{_verp_mac(secret, row_id)}"


def read_verp_token(secret: bytes, token: str) -> int | None:
    """The ledger row a genuine token names, or None."""
    number, dash, mac = token.lower().partition("-")
    if not dash or not number or len(number) > 13 or any(c not in _BASE36 for c in number):
        return None
    row_id = int(number, 36)
    if _base36(row_id) != number or not hmac.compare_digest(mac, _verp_mac(secret, row_id)):
        return None
    return row_id


def tagged(address: str, token: str) -> str:
    """``bounces@waso.example`` and a token: ``bounces+TOKEN@waso.example``."""
    local, _, domain = address.rpartition("@")
    return f"{local}+{token}@{domain}"


def tag_of(address: str, base: str) -> str | None:
    """The token of ``address`` when it is ``base`` plus a tag (``bounces+TOKEN@domain``)."""
    local, _, domain = address.strip().strip("<>").rpartition("@")
    base_local, _, base_domain = base.rpartition("@")
    head, plus, tag = local.partition("+")
    if plus and tag and head.lower() == base_local.lower() and domain.lower() == base_domain:
        return tag
    return None
