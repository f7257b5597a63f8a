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


def test_a_verp_token_names_its_row_and_survives_lower_casing_but_not_forgery():
    from hypothesis import given
    from hypothesis import strategies as st

    from campaigns.content.tokens import read_verp_token, tag_of, tagged, verp_token

    secret = b"s" * 32
    token = verp_token(secret, 123_456)
    address = tagged("bounces@waso.example", token)
    assert address.startswith("bounces+") and address == address.lower()
    assert tag_of(address.upper().replace("WASO.EXAMPLE", "waso.example"), "bounces@waso.example")
    assert read_verp_token(secret, tag_of(address, "bounces@waso.example")) == 123_456
    assert read_verp_token(secret, token.upper()) == 123_456
    assert read_verp_token(b"t" * 32, token) is None  # another clinic's, or a guess
    assert read_verp_token(secret, verp_token(secret, 123_457)[:-1] + "a") is None
    assert tag_of("bounces@waso.example", "bounces@waso.example") is None
    assert tag_of("other+x@waso.example", "bounces@waso.example") is None

    @given(st.text(max_size=40), st.integers(min_value=1, max_value=2**62))
    def never_a_wrong_row(text, row_id):
        found = read_verp_token(secret, text)
        assert found is None or verp_token(secret, found).lower() == text.lower()
        assert read_verp_token(secret, verp_token(secret, row_id)) == row_id

    never_a_wrong_row()
