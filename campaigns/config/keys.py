"""Files the config points at that must be right before anything runs: the DKIM key, the relay's CA.

They are read and checked when the config loads, so a missing or wrong file
is a config mistake (exit 2, naming the file or the REBOOK_ variable), not a
run that fails message after message. The key's text is kept as a
``SecretStr`` and no message here ever quotes it. cryptography is imported
only when a ``[dkim]`` table asks for it: most commands never pay for it.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from campaigns.config.files import read_regular

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

MIN_DKIM_BITS = 1024  # RFC 8301: verifiers ignore shorter RSA keys (2048 is the advice)
GENERATE = "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dkim.pem"


def dkim_private_key(pem: str) -> RSAPrivateKey:
    """The RSA key of a PEM text; ``ValueError`` saying what is wrong, never quoting the text.

    OpenSSL's own consistency check of a key costs ~47 ms; signing one digest
    and verifying it with the public half catches the same broken key in
    under a millisecond, so that check runs instead.
    """
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    text = pem.replace("\\n", "\n") if "\n" not in pem else pem  # a variable may hold "\n"s
    try:
        key = serialization.load_pem_private_key(
            text.encode("utf-8", "replace"), password=None, unsafe_skip_rsa_key_validation=True
        )
    except TypeError:  # cryptography's word for "this one wants a passphrase"
        raise ValueError(
            f"the private key is protected by a passphrase: rebook needs it without one "
            f"(make a new key with: {GENERATE})"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError(
            "not a PEM private key (expected a '-----BEGIN PRIVATE KEY-----' or "
            f"'-----BEGIN RSA PRIVATE KEY-----' block; make one with: {GENERATE})"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"the private key is not an RSA key (rebook signs rsa-sha256): {GENERATE}")
    if key.key_size < MIN_DKIM_BITS:
        raise ValueError(
            f"the RSA key has {key.key_size} bits: receivers ignore DKIM keys under "
            f"{MIN_DKIM_BITS} bits (make a 2048-bit one with: {GENERATE})"
        )
    probe, pad, hash_ = b"rebook dkim key check", padding.PKCS1v15(), hashes.SHA256()
    try:
        key.public_key().verify(key.sign(probe, pad, hash_), probe, pad, hash_)
    except (InvalidSignature, ValueError):
        raise ValueError("the RSA key is damaged: its signatures do not verify") from None
    return key


def read_text(path: Path, what: str) -> str:
    """A small text file the config names, or ``ValueError`` saying why it cannot be read."""
    data = read_regular(path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a text (PEM) file") from None


def check_ca_file(path: Path) -> None:
    """``ValueError`` unless ``path`` holds at least one PEM certificate OpenSSL can load."""
    read_text(path, "a PEM file of CA certificates")
    try:
        ssl.create_default_context(cafile=str(path))
    except ssl.SSLError as error:
        raise ValueError(
            f"{path} holds no PEM certificate OpenSSL can load ({error.reason or error})"
        ) from None
