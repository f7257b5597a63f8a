"""Auto-replies: vacation and out-of-office messages, and other mail a program answered with.

A vacation reply must never count as a bounce (listmonk counted them, knadh/listmonk#1334).
Two strengths of evidence, asked at two moments by ``classify``:

- ``vacation``: what only a responder writes (X-Autoreply, Precedence: auto_reply,
  Microsoft's inbox-rules headers, an out-of-office subject). Asked before the
  non-standard bounce checks, so a vacation reply is never read as one.
- ``auto_submitted``: RFC 3834's ``Auto-Submitted: auto-replied`` or ``auto-generated``.
  Exim's and Postfix's bounces carry it too, so it is asked only after them.
"""

from __future__ import annotations

from email.message import Message

from campaigns.bounces.parts import header
from campaigns.bounces.reasons import phrases

# headers a vacation responder writes (any value but "no"), and their writers
RESPONDER_HEADERS = (
    "X-Autoreply",  # Roundcube's managesieve, Zimbra, cPanel
    "X-Autorespond",  # cPanel, vacation(1) clones
    "X-Autoresponder",
    "X-Vacation",
    "X-Mail-Autoreply",
)
REPLY_PREFIXES = frozenset({"re", "aw", "sv", "vs", "antw", "r", "rif", "odp", "ynt"})
# Microsoft Exchange / Outlook: replies sent by the inbox rules or the OOF assistant
MICROSOFT = (("X-MS-Exchange-Inbox-Rules-Loop", ""),
             ("X-MS-Exchange-Generated-Message-Source", "mailbox rules agent"))  # fmt: skip
VACATION_SUBJECT = phrases(
    r"out of (?:the )?office", r"\booo\b", r"automatic reply", r"auto(?:matic)?[- ]?reply",
    r"auto[- ]?response", r"autorespon", r"vacation", r"on holiday", r"on leave",
    r"away from (?:the office|my desk|my email)", r"i am away", r"i'm away", r"i will be away",
    r"abwesenheit", r"automatische antwort", r"au(?:ß|ss)er haus", r"nicht im b(?:ü|ue)ro",
    r"r[ée]ponse automatique", r"absence du bureau", r"absent du bureau", r"\bcong[ée]s?\b",
    r"respuesta autom[áa]tica", r"fuera de la oficina", r"ausente",
    r"risposta automatica", r"fuori (?:sede|ufficio)",
    r"automatisch antwoord", r"afwezig", r"niet aanwezig",
    r"resposta autom[áa]tica", r"fora do escrit[óo]rio",
    r"autosvar", r"fr[åa]nvar", r"frav(?:æ|ae)r", r"automaattinen vastaus", r"poissa",
    r"automatyczna odpowied", r"poza biurem", r"automatick[áa] odpov",
    r"автоматический ответ", r"автоответ", r"отпуск",
    r"otomatik yan[ıi]t", r"自動応答", r"自動返信", r"不在",
    r"自动回复", r"自動回覆", r"자동 응답",
)  # fmt: skip


def vacation(msg: Message) -> str:
    """What marks ``msg`` as a vacation or out-of-office reply, "" when nothing does."""
    for name in RESPONDER_HEADERS:
        value = header(msg, name)
        if name in msg and value.lower() not in ("no", "false", "0"):
            return f"{name}: {value}".rstrip(": ")
    precedence = header(msg, "Precedence").lower()
    if precedence in ("auto_reply", "auto-reply", "autoreply"):
        return f"Precedence: {precedence}"
    for name, value in MICROSOFT:
        if name in msg and value in header(msg, name).lower():
            return f"{name}: {header(msg, name)}".rstrip(": ")
    subject = header(msg, "Subject")
    if VACATION_SUBJECT.search(own_words(subject)):
        return f"Subject: {subject[:80]}"
    return ""


def own_words(subject: str) -> str:
    """The part of a subject a responder wrote: before the quoted original's subject.

    "Automatic reply: Your visit" is the responder's "Automatic reply"; the bounce
    "Undeliverable: Before your vacation" says nothing of a vacation.
    """
    rest = subject
    while True:
        head, colon, tail = rest.replace("\uff1a", ":").partition(":")
        if colon and head.strip().lower() in REPLY_PREFIXES:
            rest = tail
            continue
        return head


def auto_submitted(msg: Message) -> str:
    """RFC 3834's mark of a message a program sent, "" when absent or ``no``."""
    value = header(msg, "Auto-Submitted").lower()
    if value and not value.startswith("no"):
        return f"Auto-Submitted: {value}"
    return ""
