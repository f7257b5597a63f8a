"""RFC 3464 delivery status notifications: one Recipient per per-recipient block.

A DSN is multipart/report; report-type=delivery-status, its second part
message/delivery-status (or message/global-delivery-status, RFC 6533): a
per-message block, then one block per recipient with Action, Status,
Diagnostic-Code and Final-Recipient / Original-Recipient.
"""

from __future__ import annotations

import re
from email.message import Message

from campaigns.bounces.kinds import Recipient
from campaigns.bounces.parts import body_text, content_type, printable
from campaigns.bounces.reasons import (
    ENHANCED,
    STAGE_WORDS,
    enhanced_code,
    is_vague,
    judge,
    reason,
    words_about,
)

MDN_TYPE = "message/disposition-notification"
REPORT_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
NOT_FAILED = frozenset({"delivered", "relayed", "expanded"})
MAX_RECIPIENTS = 5000  # blocks read from one report; a real one names a handful
_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_TYPE = re.compile(r"^\s*[A-Za-z0-9-]+\s*;\s*")  # "rfc822;", "smtp;", "X-Postfix;"


def blocks(part: Message) -> list[dict[str, str]]:
    """The fields of each block of a delivery-status part, names lower-cased."""
    payload = part.get_payload()
    if isinstance(payload, list):  # Python's parser split the blocks into header sets
        found = []
        for block in payload[:MAX_RECIPIENTS]:
            if isinstance(block, Message):
                fields: dict[str, str] = {}
                for name, value in block.items():  # a repeated field's values, one a line
                    name = name.lower()
                    value = printable(str(value))
                    fields[name] = f"{fields[name]}\n{value}" if name in fields else value
                found.append(fields)
        if any(found):
            return found
    return parse_blocks(body_text(part) if not isinstance(payload, list) else "")


def parse_blocks(text: str) -> list[dict[str, str]]:
    """Blocks of ``Field: value`` lines separated by blank lines, continuation lines joined."""
    found: list[dict[str, str]] = []
    fields: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                found.append(fields)
                if len(found) >= MAX_RECIPIENTS:
                    return found
            fields, last = {}, ""
        elif line[0] in " \t" and last:
            fields[last] += " " + line.strip()
        elif match := _FIELD.match(line):
            last, value = match.group(1).lower(), match.group(2).strip()
            fields[last] = f"{fields[last]}\n{value}" if last in fields else value
    if fields:
        found.append(fields)
    return found


def address(value: str) -> str:
    """The address of a Final-Recipient or Original-Recipient field, lower-cased."""
    value = _TYPE.sub("", value, count=1).strip()
    return value.strip("<>\"' ").lower()


def recipient(fields: dict[str, str], human: str) -> Recipient:
    """One per-recipient block as a Recipient: who, what happened, and why."""
    fields = {name: value.split("\n", 1)[0] for name, value in fields.items()}  # the first of each
    action = fields.get("action", "").split()[0].lower() if fields.get("action") else ""
    diagnostic = _TYPE.sub("", fields.get("diagnostic-code", ""), count=1)
    who = address(fields.get("original-recipient", "")) or address(
        fields.get("final-recipient", "")
    )
    status = ".".join(m.groups()) if (m := ENHANCED.search(fields.get("status", ""))) else ""
    # "5.0.0" beside "550 5.1.1 user unknown"; "4.4.7" (expired) beside the last try's "4.7.1"
    if not status or is_vague(status) or status[2:] == "4.7":
        said = enhanced_code(diagnostic)
        status = said if said and said[0] == (status or said)[0] else status
    context = near(human, who)
    words = diagnostic or context
    stage = STAGE_WORDS.search(context)  # Postfix says "(in reply to MAIL FROM command)" there
    if action in NOT_FAILED or status.startswith("2"):  # "Action: deliverable", Status 2.1.5
        kind = "not-a-bounce"
    elif action == "delayed":
        kind = "soft"  # still being tried: a failure report follows if it fails
    else:
        kind = judge(status, f"{words} {stage.group(0) if stage else ''}")
    return Recipient(who, kind, status, reason(words, status), action if action in ACTIONS else "")


def near(human: str, who: str) -> str:
    """The words of a DSN's human-readable part about ``who`` (when Diagnostic-Code is missing)."""
    if not human:
        return ""
    return words_about(human, who) if who else " ".join(human.splitlines()[:12])


def recipients(msg_parts: list[Message]) -> tuple[list[Recipient], bool]:
    """The recipients of the delivery-status part among ``msg_parts``, and whether there was one."""
    report = next((p for p in msg_parts if content_type(p) in REPORT_TYPES), None)
    if report is None:
        return [], False
    human = next((body_text(p) for p in msg_parts if content_type(p) == "text/plain"), "")
    found = []
    for fields in blocks(report):
        if any(k in fields for k in ("final-recipient", "original-recipient", "action")):
            found.append(recipient(fields, human))
    return found, True


def refusal(msg_parts: list[Message]) -> Recipient | None:
    """The recipient of an MDN that says the message was deleted or refused unread (RFC 8098's
    "deleted" and "denied", as Sieve's reject sends them), None for a plain read receipt."""
    report = next((p for p in msg_parts if content_type(p) == MDN_TYPE), None)
    if report is None:
        return None
    fields = {k: v.split("\n", 1)[0] for block in blocks(report) for k, v in block.items()}
    disposition = fields.get("disposition", "").lower()
    if not any(word in disposition for word in ("deleted", "denied", "failed", "rejected")):
        return None
    human = next((body_text(p) for p in msg_parts if content_type(p) == "text/plain"), "")
    who = address(fields.get("final-recipient", "") or fields.get("original-recipient", ""))
    words = printable(human)[:2000]
    status = enhanced_code(words)
    return Recipient(who, judge(status, words), status, reason(words, status), "")
