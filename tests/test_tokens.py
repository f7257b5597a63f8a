"""Unsubscribe tokens: signed, constant-time checked, secret kept in the database."""

from __future__ import annotations

from pydantic import SecretStr

from campaigns.content.tokens import make_token, read_token, unsubscribe_url
from campaigns.store.secrets import web_secret

SECRET = b"s3cret"


def test_a_token_names_its_client():
    assert read_token(SECRET, make_token(SECRET, "C000042")) == "C000042"
    assert read_token(SECRET, make_token(SECRET, "Ünïcode id")) == "Ünïcode id"


def test_forged_tampered_and_garbage_tokens_are_refused():
    token = make_token(SECRET, "C1")
    payload, signature = token.split(".")
    other = make_token(SECRET, "C2").split(".")[0]
    assert read_token(b"another secret", token) is None
    assert read_token(SECRET, f"{other}.{signature}") is None  # someone else's id, my signature
    assert read_token(SECRET, f"{payload}.{signature[:-2]}AA") is None
    for garbage in ["", ".", "abc", "!!!.???", f"{payload}.", f".{signature}"]:
        assert read_token(SECRET, garbage) is None


def test_url():
    assert unsubscribe_url("https://mail.example/", "T") == "https://mail.example/unsubscribe/T"


def test_secret_is_generated_once_and_shared(engine):
    with engine.connect() as connection:
        first = web_secret(connection, None)
    with engine.connect() as connection:
        assert web_secret(connection, None) == first
        assert len(first) >= 32
        assert web_secret(connection, SecretStr("configured")) == b"configured"
