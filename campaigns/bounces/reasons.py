"""Why a recipient failed: an enhanced status code (RFC 3463) and the remote server's words.

The kinds, and how they are told apart (docs/returns-classification.md has the
reasoning and sources):

- hard: the address is dead (no such user or domain, moved, disabled, null MX);
- soft: it may work later (mailbox full, delayed, expired, greylisted, any 4.x.x);
- clinic-problem: the address is fine, the *sender* was refused (policy, spam,
  blocklists, SPF/DKIM/DMARC, relaying, rate limits): never a reason to drop a client.

Many servers answer a vague 5.0.0 or 5.5.0 and say what they mean in words, so
words decide when the code is vague. The clinic's-problem words win over a code
that says "hard": wrongly suppressing a good client loses them for good, while a
dead address that is missed fails again next time and is caught then.
"""

from __future__ import annotations

import re

from campaigns.bounces.kinds import REASON_LIMIT, Kind
from campaigns.bounces.parts import printable

ENHANCED = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
BASIC = re.compile(r"(?<!\d)([245])\d\d(?![\d.])")
REPLY = re.compile(r"(?<![\w.])[45]\d\d(?![\w.])")
BLOCKS_LOOKED_AT = 4  # mentions of one recipient read for its reason
NAMED = re.compile(r"^\s*[\"<]?([^\s\"<>@]+@[^\s\"<>:]+)")  # a line that starts with an address
SEPARATOR = re.compile(r"^\W{0,3}(?:-{4,}|={4,}|_{4,})")  # "----- Original message -----"
# a line that quotes the original's headers names the recipient but says nothing of it
HEADER_LINE = re.compile(
    r"^\s*(?:to|cc|bcc|from|reply-to|delivered-to|return-path|received(?:-spf)?|message-id|x-[\w-]+"
    r"|authentication-results|dkim-signature|arc-[\w-]+|subject|date|mime-version|content-[\w-]+)\s*:"
    r"|^\s+(?:for|by|with|id)\s",  # the folded lines of a quoted Received header
    re.IGNORECASE,
)

# codes (without their class) that name a dead address, RFC 3463 and RFC 7505
HARD_CODES = {
    "1.1",  # bad destination mailbox address: no such user
    "1.2",  # bad destination system address: no such domain
    "1.3",  # bad destination mailbox address syntax
    "1.6",  # destination mailbox has moved, no forwarding address
    "1.10",  # recipient address has null MX (RFC 7505): the domain takes no mail
    "2.1",  # mailbox disabled, not accepting messages (Gmail, Yahoo: the account is gone)
    "7.13",  # user account disabled (IANA's registry of enhanced status codes, RFC 5248)
}
# codes that say the mailbox may work later (in class 5 as in 4)
SOFT_CODES = {
    "2.2",  # mailbox full: usually emptied again; soft_limit catches an abandoned one
    "3.1",  # mail system full
    "4.7",  # delivery time expired
    "4.1", "4.2", "4.3", "4.5", "4.6",  # no answer, bad connection, DNS, congestion, loop
    "2.3",  # message length exceeds the recipient's administrative limit
}  # fmt: skip
# codes about the sender or the message, never the recipient's address
CLINIC_SUBJECTS = ("7.",)  # security or policy status: SPF, DKIM, DMARC, spam, blocked, rate
SENDER_CODES = {"1.7", "1.8"}  # bad sender mailbox syntax, bad sender system address
CLINIC_CODES = SENDER_CODES | {
    "3.4",  # message too big for the system
    "6.0", "6.1", "6.2", "6.3", "6.4", "6.5", "6.6", "6.7", "6.8", "6.9", "6.10",  # content
}  # fmt: skip


def phrases(*words: str) -> re.Pattern[str]:
    """One case-blind pattern matching any of ``words`` (regular expressions)."""
    return re.compile("|".join(f"(?:{w})" for w in words), re.IGNORECASE)


# The recipient's own account is closed, even when the server calls it "blocked".
ACCOUNT_WORDS = phrases(
    r"(?:recipient|user|destination|receiver|mailbox)(?:'s)? account (?:is |has been |was )?"
    r"(?:blocked|disabled|suspended|deactivated|closed)",
    r"compte du destinataire est (?:bloqu|d[ée]sactiv|ferm)",
)

# Refused before any recipient was named (at the greeting, HELO or MAIL FROM): it cannot be
# about the recipient, whatever the words (Exim's "after MAIL FROM", Postfix's "in reply to").
STAGE_WORDS = phrases(
    r"after (?:initial connection|connect|ehlo|helo|mail from)",
    r"in reply to (?:mail from|ehlo|helo|the initial greeting)",
    r"while talking to .{0,80}>>> mail from",
    r"refused to talk to me",
)

# The sender is refused: blocklists, spam, authentication, relaying, rate, policy.
CLINIC_WORDS = phrases(
    r"spam", r"junk mail", r"unsolicited", r"bulk mail",
    r"black ?list", r"block ?list", r"blocked using", r"(?<!not )listed (?:at|in|on|by)",
    r"\brbl\b",
    r"dnsbl", r"spamhaus", r"spamcop", r"sorbs", r"uceprotect", r"reputation", r"sender ?score",
    r"\bspf\b", r"\bdkim\b", r"\bdmarc\b", r"unauthenticated", r"authentication",
    r"not authenticated", r"sender policy",
    r"reverse dns", r"\bptr\b", r"\brdns\b", r"(?:bad|invalid) helo", r"helo (?:command )?rejected",
    r"client host (?:\[[^\]]*\] )?rejected",
    r"relay access denied", r"relaying denied", r"unable to relay", r"relay not permitted",
    r"not permitted to relay", r"relaying (?:is )?not allowed", r"relay denied",
    r"we do not relay", r"no relaying", r"relaying prohibited", r"relay not allowed",
    r"sender address", r"domain of sender", r"sender rejected", r"too many recipients",
    r"sender denied", r"sender verify",
    r"sender domain", r"sender is not allowed", r"sender not allowed", r"unauthorized sender",
    r"rate limit", r"rate-limit", r"ratelimit", r"too many (?:messages|connections|mails?|emails?)",
    r"throttl", r"unusual rate", r"sending limit", r"exceeded the rate",
    r"policy", r"prohibited", r"content rejected", r"message content", r"virus", r"malware",
    r"phish", r"suspicious", r"banned", r"blocked", r"denied by",
    r"message (?:size|is too big|too big|too large)", r"size limit exceeded",
    r"starttls", r"tls (?:is )?required", r"encryption required",
    r"(?:host|network) (?:is )?not allowed", r"not accepting mail from", r"permission to post",
    r"not have permission",
    r"(?:invalid|client|your|sending|sender) ip\b", r"\bip=", r"refused to talk to me",
    r"\(bl\)", r"weren't sent", r"not allowed to send",
)  # fmt: skip

# The mailbox is full or the delay is the receiver's: it may work later.
QUOTA_WORDS = phrases(
    r"mailbox (?:is )?full", r"full mailbox", r"over ?quota", r"quota", r"storage",
    r"mailbox size limit", r"exceeded (?:the|their|its) (?:storage|mailbox)", r"out of space",
    r"disk full", r"receiving mail (?:at a rate|too quickly)",
    r"greylist", r"graylist", r"grey-list", r"gray-list", r"postgrey",
)  # fmt: skip

# The address is dead: no such user or domain, moved, closed, disabled.
HARD_WORDS = phrases(
    r"user unknown", r"unknown user", r"unknown recipient", r"recipient unknown",
    r"unknown (?:local[- ]part|mailbox|address|alias)", r"no such (?:user|recipient|mailbox|"
    r"account|person|address|local user|domain)", r"not our customer",
    r"mailbox (?:not found|does not exist|doesn't exist|unknown|is not available)",
    r"(?:user|recipient|address|account|mailbox) (?:not found|not exist)",
    r"does not exist", r"doesn't exist", r"do not exist", r"not exist", r"nonexist",
    r"invalid (?:recipient|mailbox|address|user)", r"not a valid (?:mailbox|recipient|user)",
    r"recipnotfound", r"as\(201806281\)", r"recipient address rejected: access denied",
    r"unrouteable address", r"unroutable address",
    r"address not found", r"recipient not found", r"no mailbox", r"bad destination",
    r"doesn't have a [\w.-]+ account", r"not have an account", r"no account",
    r"account (?:has been |is |was )?(?:disabled|deactivated|suspended|closed|"
    r"terminated|removed|deleted|inactive|expired|locked)",
    r"mailbox (?:has been |is )?(?:disabled|deactivated|suspended|closed|inactive)",
    r"(?:is|has been) disabled", r"no longer (?:active|available|valid|in use|exists)",
    r"has moved", r"user moved", r"host unknown", r"unknown host",
    r"domain (?:not found|does not exist|is not valid|unknown)", r"unknown domain",
    r"null mx", r"does not accept (?:e-?)?mail", r"no mx record",
    r"host or domain name not found", r"domain has no mail", r"no smtp service",
    r"not recogni[sz]ed", r"invalid final delivery", r"not listed in", r"invalid domain",
    r"illegal host", r"couldn't find a mail exchanger", r"could not find a mail exchanger",
    r"n'existe pas", r"existiert nicht", r"no existe", r"non esiste", r"bestaat niet",
    r"destinataire inconnu", r"empf(?:ä|ae)nger unbekannt", r"unbekannter empf",
)  # fmt: skip

# The trouble is passing: a connection, a timeout, an expiry.
PASSING_WORDS = phrases(
    r"temporar", r"try again", r"try later", r"deferred", r"timed? ?out", r"expired",
    r"too long", r"delay", r"connection (?:refused|reset|lost|closed|dropped)",
    r"could not connect", r"unable to connect", r"no route", r"network", r"retry",
    r"resources", r"unavailable", r"busy",
)  # fmt: skip

# RFC 3463's words for the codes a server sends without saying anything itself
MEANING = {
    "1.1": "bad destination mailbox address", "1.2": "bad destination system address",
    "1.3": "bad destination mailbox address syntax", "1.6": "destination mailbox has moved",
    "1.10": "recipient address has null MX", "2.1": "mailbox disabled",
    "2.2": "mailbox full", "2.3": "message length exceeds administrative limit",
    "3.1": "mail system full", "3.4": "message too big for system",
    "4.1": "no answer from host", "4.2": "bad connection", "4.3": "directory server failure",
    "4.4": "unable to route", "4.6": "routing loop detected", "4.7": "delivery time expired",
    "7.0": "other security or policy status", "7.1": "delivery not authorized, message refused",
    "7.26": "multiple authentication checks failed",
}  # fmt: skip


def enhanced_code(value: str) -> str:
    """The first specific enhanced status code (``5.1.1``) in ``value``, else its first vague one.

    Relays wrap the remote server's words in their own vague code: Amazon SES's
    "5.1.0 - Unknown address error 550-'5.7.1 … Access denied'" was refused for policy.
    """
    codes = [".".join(m.groups()) for m in ENHANCED.finditer(value, 0, 4000) if m.group(1) != "2"]
    return next((code for code in codes if not is_vague(code)), codes[0] if codes else "")


def is_vague(status: str) -> bool:
    """Whether ``status`` says only "failed" or "delayed": x.0.0, x.n.0, x.5.x or nothing."""
    if not status:
        return True
    _, subject, detail = status.split(".")
    return detail == "0" or subject in ("0", "5") or int(detail) >= 900


def code_kind(status: str) -> Kind | None:
    """What a specific status code alone says, None for a vague one."""
    klass, rest = status[:1], status[2:]
    if rest.startswith(("6.", "7.")) and klass == "5" and rest not in HARD_CODES:
        return "clinic-problem"  # content or policy, however vague the detail (5.7.0, 5.6.0)
    if is_vague(status):
        return None
    if klass == "5" and rest in HARD_CODES:
        return "hard"
    if rest.startswith(CLINIC_SUBJECTS) or rest in CLINIC_CODES:
        return "clinic-problem"
    if klass == "4" or rest in SOFT_CODES:
        return "soft"
    return None


def words_kind(words: str) -> str:
    """Which kind of words the server used: stage, account, clinic, quota, dead, passing or ""."""
    for name, pattern in (
        ("stage", STAGE_WORDS), ("account", ACCOUNT_WORDS), ("clinic", CLINIC_WORDS),
        ("quota", QUOTA_WORDS), ("dead", HARD_WORDS), ("passing", PASSING_WORDS),
    ):  # fmt: skip
        if pattern.search(words):
            return name
    return ""


def judge(status: str, words: str, *, temporary: bool = False) -> Kind:
    """The kind of one failed recipient, from its status code and the server's words.

    ``temporary``: the report says the mail is only delayed, or the failure is of
    class 4 (RFC 3463: "persistent transient"): never hard, whatever it says.
    """
    if not status and (basic := BASIC.search(words)):  # "450 mailbox busy": no enhanced code
        temporary = temporary or basic.group(1) == "4"
    temporary = temporary or status.startswith("4")
    by_code = code_kind(status)
    said = words_kind(words)
    if said == "stage" or status[2:] in SENDER_CODES:
        return "clinic-problem"
    if said == "account" and not temporary:
        return "hard"
    if said == "clinic":
        return "clinic-problem"
    if said == "quota":
        return "soft"  # full, over quota, greylisted: even as 4.7.1 or 5.7.1
    if by_code == "clinic-problem":
        return "clinic-problem"  # 5.7.x is policy even beside "user unknown" (NOTES: listmonk)
    if temporary:
        return "soft"
    if said == "dead":
        return "hard"  # words beat a vague or a network code: Microsoft's "5.4.1 … Access denied"
    return by_code or "soft"  # a permanent failure nobody explained: counted, never acted on


def words_about(text: str, who: str) -> str:
    """The words of ``text`` about ``who``: the block (up to a blank line) where it is named.

    The first block that says something (a status code, a reply code, words the rules
    know) wins; lines that quote the original's headers ("To: who") are passed over.
    """
    if not who or who not in text.lower():
        return ""
    lines = text.splitlines()
    first = ""
    looked = 0
    for index, line in enumerate(lines):
        if who not in line.lower() or HEADER_LINE.match(line):
            continue
        looked += 1
        if looked > BLOCKS_LOOKED_AT:  # a report that repeats the address all over says no more
            break
        block = [line]
        for following in lines[index + 1 : index + 8]:
            if not following.strip() or SEPARATOR.match(following) or HEADER_LINE.match(following):
                break
            if (named := NAMED.match(following)) and named.group(1).lower() != who:
                break  # the next recipient's block
            block.append(following)
        said = " ".join(block)
        if enhanced_code(said) or REPLY.search(said) or words_kind(said):
            return said
        first = first or said
    return first


def reason(words: str, status: str) -> str:
    """The remote server's words as one line for an operator; RFC 3463's when it said none."""
    line = printable(words)
    if not line and status:
        line = MEANING.get(status[2:], "")
    return line[:REASON_LIMIT]
