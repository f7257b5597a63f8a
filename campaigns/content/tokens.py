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
