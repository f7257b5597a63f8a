"""Classify a message that came back to the bounce address: ``classify(raw) -> Returned``.

The order of the questions is the design (docs/returns-classification.md):

1. ARF feedback report (RFC 5965): a complaint, or the clinic's problem (auth-failure).
2. RFC 3464 DSN: each recipient judged by its Action, Status and the server's words.
3. A read receipt (RFC 8098 MDN): an auto-reply.
4. A vacation or out-of-office reply: never a bounce, whatever its body says.
5. A non-standard bounce (qmail, Exim, Yahoo, old Microsoft…): addresses by flufl.bounce.
6. Mail to a plain unsubscribe address: an unsubscribe (Apple Mail's carry Auto-Submitted).
7. Any other RFC 3834 ``Auto-Submitted`` message: an auto-reply.
8. Anything else: not a bounce.

Pure: bytes in, a value out, no I/O, and never an exception.
"""

from __future__ import annotations

from email.message import Message

from campaigns.bounces import arf, autoreply, dsn, nonstandard
from campaigns.bounces.kinds import Kind, Recipient, Returned, most_serious
from campaigns.bounces.parts import (
    RETURNED_TYPES,
    addresses,
    body_text,
    content_type,
    header,
    headers,
    leaves,
    message_ids_of,
    param,
    parse,
    quoted_message_ids,
    returned_headers,
    unique,
)

__all__ = ["Kind", "Recipient", "Returned", "classify"]


def classify(raw: bytes, *, unsubscribe_to: frozenset[str] = frozenset()) -> Returned:
    """What ``raw`` is and whom it is about. Never raises, whatever ``raw`` is."""
    try:
        msg = parse(raw if isinstance(raw, bytes) else bytes(raw))
    except Exception as error:
        return Returned("not-a-bounce", (), (), (), "", "", f"unreadable: {type(error).__name__}")
    try:
        return _classify(msg, frozenset(a.lower() for a in unsubscribe_to))
    except Exception as error:  # a case the rules did not foresee: reported, never acted on
        return Returned(
            "not-a-bounce", (), (), _envelope_to(msg), _sender(msg), "",
            f"could not be classified ({type(error).__name__}); left alone",
        )  # fmt: skip


def _classify(msg: Message, unsubscribe_to: frozenset[str]) -> Returned:
    parts = list(leaves(msg))
    to, sender = _envelope_to(msg), _sender(msg)

    def answer(kind: Kind, recipients=(), note: str = "", feedback: str = "", ids=()) -> Returned:
        return Returned(kind, tuple(recipients), unique(list(ids)), to, sender, feedback, note)

    report = arf.feedback(parts)
    if report is not None:
        feedback_type, kind, why, complainer = report
        return answer(kind, complainer, f"ARF {feedback_type or 'untyped'} report: {why}",
                      feedback_type, _returned_ids(parts))  # fmt: skip

    if (jmrp := arf.microsoft_jmrp(parts)) is not None:
        return answer("complaint", (jmrp,) if jmrp.address else (), f"complaint: {jmrp.reason}",
                      "abuse", _returned_ids(parts))  # fmt: skip

    found, is_dsn = dsn.recipients(parts)
    if is_dsn and found:
        failed = sum(r.kind != "not-a-bounce" for r in found)
        note = f"DSN: {len(found)} recipient{'s' * (len(found) > 1)}"
        if failed < len(found):
            note += f", {len(found) - failed} delivered, relayed or expanded"
        return answer(most_serious(tuple(found)), found, note, ids=_ids(msg, parts))

    if _is_read_receipt(msg):
        refused = dsn.refusal(parts)  # Sieve's reject (RFC 5429) answers with an MDN
        if refused is not None:
            return answer(refused.kind, (refused,), "MDN: the recipient's filter refused it",
                          ids=_ids(msg, parts))  # fmt: skip
        return answer("auto-reply", note="auto-reply: read receipt (MDN, RFC 8098)")
    if why := autoreply.vacation(msg):
        return answer("auto-reply", note=f"auto-reply: {why}")

    if is_dsn or (looks := nonstandard.looks_like_bounce(msg)):
        failures, how = nonstandard.recipients(msg)
        if failures:
            kind = most_serious(tuple(failures))
            signal = "DSN without recipient fields" if is_dsn else looks
            return answer(kind, failures, f"bounce ({signal}): {how}", ids=_ids(msg, parts))

    # Apple Mail's unsubscribe messages carry Auto-Submitted: auto-replied, so an unsubscribe
    # address is asked first; a vacation responder answers From or Reply-To, never this address
    if unsubscribe_to and (address := _unsubscribe_address(to, unsubscribe_to)):
        return answer("unsubscribe", note=f"mailed unsubscribe to {address}")
    if why := autoreply.auto_submitted(msg):
        return answer("auto-reply", note=f"auto-reply: {why}")
    return answer("not-a-bounce", note="no report, auto-reply or unsubscribe")


def _is_read_receipt(msg: Message) -> bool:
    return content_type(msg) == "multipart/report" and param(msg, "report-type") == (
        "disposition-notification"
    )


def _returned_ids(parts: list[Message]) -> list[str]:
    """Message-IDs of the returned originals (text/rfc822-headers, message/rfc822, ARF's part 3)."""
    found = []
    for part in parts:
        if content_type(part) in RETURNED_TYPES:
            original = returned_headers(part)
            if original is not None:
                found.extend(message_ids_of(original))
    return found


def _ids(msg: Message, parts: list[Message]) -> list[str]:
    """The original's Message-IDs: returned headers first, then quoted in the text, then the
    bounce's own In-Reply-To and References (Gmail's and Exchange's bounces name it there)."""
    found = _returned_ids(parts)
    if not found:
        for part in parts:
            if content_type(part).startswith("text/"):
                found.extend(quoted_message_ids(body_text(part)))
    for name in ("In-Reply-To", "References"):
        found.extend(w for value in headers(msg, name) for w in value.split() if w.startswith("<"))
    return found


def _envelope_to(msg: Message) -> tuple[str, ...]:
    names = ("Delivered-To", "X-Original-To", "To")
    return unique(
        [address for name in names
         for address in addresses(headers(msg, name), keep_local_case=True)]
    )  # fmt: skip


def _sender(msg: Message) -> str:
    found = addresses([header(msg, "From")])
    return found[0] if found else ""


def _unsubscribe_address(to: tuple[str, ...], plain: frozenset[str]) -> str:
    """The envelope recipient that is a plain unsubscribe address once its +tag is dropped."""
    for address in to:
        local, _, domain = address.rpartition("@")
        if f"{local.split('+', 1)[0].lower()}@{domain}" in plain:
            return address
    return ""
