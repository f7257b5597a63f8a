"""Building personalised messages: rebook against the bare ``email`` package, same run.

    python bench/render.py [--messages 20000] [--campaign book-next-massage]

Three timings over the same clients:

  bare      EmailMessage built and serialised from bodies rendered beforehand
            (the cost of the standard library alone: the reference)
  stdlib    rebook's render (Jinja, pre-inlined CSS, text part) + that same
            EmailMessage: rebook's overhead on top of the bare package
  rebook    rebook's render + rebook's MessageComposer: what rebook does
  signed    the same with a [dkim] key (2048-bit RSA): what rebook does with DKIM

and checks that every 50th rebook message parses back like the bare one and
that every 50th signed one passes ``dkim.verify``. Then it times the DKIM
signature alone on the composed messages, rebook's signer (dkimpy's
canonicalisation, OpenSSL's RSA) against ``dkim.sign`` as shipped (pure
Python RSA, on the first ``--dkimpy`` messages only: it is slow).
An appointment reminder campaign (``--campaign appointment-reminder``) also
carries its ``appointment.ics``: made per message by rebook's CalendarMaker,
made beforehand (like the bodies) and attached by the email package for the
other two.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from campaigns.clients.sample import FIRST_NAMES, LAST_NAMES  # noqa: E402
from campaigns.config import load_settings  # noqa: E402
from campaigns.content.calendar import CalendarMaker  # noqa: E402
from campaigns.content.context import Appointment, ClientView, sample_client  # noqa: E402
from campaigns.content.message import MessageComposer, new_message_id, sender_from  # noqa: E402
from campaigns.content.render import CampaignRenderer  # noqa: E402
from campaigns.content.signing import SIGNED, DkimSigner  # noqa: E402
from campaigns.content.tokens import make_token, unsubscribe_url  # noqa: E402
from campaigns.delivery.audience import reminds_visits  # noqa: E402
from campaigns.resources import example_config  # noqa: E402


def clients(count: int) -> list[ClientView]:
    rng = random.Random(7)
    return [
        ClientView(
            f"C{i:06d}",
            rng.choice(FIRST_NAMES),
            rng.choice(LAST_NAMES),
            f"client.{i}@example.com",
            (),
        )
        for i in range(count)
    ]


def bare_message(subject, text, html, sender, client, message_id, now, link, ics=None) -> bytes:
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = Address(sender.name, addr_spec=sender.address)
    message["To"] = Address(client.full_name, addr_spec=client.email)
    message["Subject"] = subject
    message["Date"] = now
    message["Message-ID"] = message_id
    if sender.reply_to:
        message["Reply-To"] = sender.reply_to
    if link:
        message["List-Unsubscribe"] = f"<{link}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    if ics is not None:
        message.add_attachment(ics.data, maintype="text", subtype="calendar",
                               filename=ics.filename, params={"method": "PUBLISH"})  # fmt: skip
    return bytes(message)


def reading(raw: bytes) -> tuple:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    headers = tuple(
        str(message[name]).strip()
        for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe")
    )
    parts = tuple(
        part.get_content().replace("\r\n", "\n").rstrip("\n")
        for part in message.walk()
        if not part.is_multipart()
    )
    return headers, parts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--campaign", default="book-next-massage")
    parser.add_argument("--dkimpy", type=int, default=200, help="messages dkim.sign signs")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "config.toml"
        config.write_text(example_config().read_text())
        settings = load_settings(config)
    now = datetime.now(UTC)
    _, last_visit, next_visit = sample_client(now, settings.clinic.timezone)
    sender = sender_from(settings.mail)
    marketing = settings.campaigns[options.campaign].marketing
    people = clients(options.messages)
    links = [
        unsubscribe_url(settings.web.public_url, make_token(b"secret", c.id)) if marketing else None
        for c in people
    ]
    ids = [new_message_id(sender) for _ in people]
    calendar = appointments = None
    if reminds_visits(
        settings.campaigns[options.campaign],
        settings.segments[settings.campaigns[options.campaign].segment],
    ):
        calendar = CalendarMaker(settings.clinic, sender, settings.services)
        slots = [next_visit.starts_at + timedelta(minutes=30 * (n % 16)) for n in range(16)]
        appointments = [Appointment(f"V{n}", slots[n % 16], next_visit.service, next_visit.therapist, now)
                        for n in range(len(people))]  # fmt: skip
    attached = (
        [calendar.attachment(a, now) for a in appointments] if calendar else [None] * len(people)
    )

    started = time.perf_counter()
    renderer = CampaignRenderer(settings, options.campaign)
    prepare_s = time.perf_counter() - started
    article = renderer.articles[0] if renderer.articles else None
    rendered = [
        renderer.render(c, last_visit, next_visit, link, article)
        for c, link in zip(people, links, strict=True)
    ]

    def run_bare():
        return [bare_message(r.subject, r.text, r.html, sender, c, i, now, link, ics)
                for r, c, i, link, ics in zip(rendered, people, ids, links, attached, strict=True)]  # fmt: skip

    def run_stdlib():
        out = []
        for c, i, link, ics in zip(people, ids, links, attached, strict=True):
            r = renderer.render(c, last_visit, next_visit, link, article)
            out.append(bare_message(r.subject, r.text, r.html, sender, c, i, now, link, ics))
        return out

    config = dkim_config()
    signer = DkimSigner(config)

    def run_rebook(signer=None):
        composer = MessageComposer(sender, signer)
        return [
            composer.compose(renderer.render(c, last_visit, next_visit, link, article), to_name=c.full_name,
                             to_email=c.email, message_id=i, date=now, unsubscribe_url=link,
                             attachment=calendar.attachment(a, now) if calendar else None)
            for c, i, link, a in zip(people, ids, links, appointments or [None] * len(people), strict=True)
        ]  # fmt: skip

    timings = {}
    outputs = {}
    runs = (("bare", run_bare), ("stdlib", run_stdlib), ("rebook", run_rebook),
            ("signed", lambda: run_rebook(signer)))  # fmt: skip
    for name, run in runs:
        started = time.perf_counter()
        outputs[name] = run()
        timings[name] = time.perf_counter() - started
    checked = range(0, options.messages, 50)
    mismatches = sum(reading(outputs["rebook"][n]) != reading(outputs["bare"][n]) for n in checked)
    unverified = sum(not verified(outputs["signed"][n], signer) for n in checked)
    signing = signing_rates(outputs["rebook"], config, now, options.dkimpy)

    n = options.messages
    size = sum(map(len, outputs["rebook"])) / n
    print(
        f"{n:,} messages of campaign {options.campaign!r} (~{size / 1024:.1f} KiB each); templates prepared once in {prepare_s * 1000:.0f} ms"
    )
    for name, label in (("bare", "bare email package, bodies pre-rendered"),
                        ("stdlib", "rebook render + email package"),
                        ("rebook", "rebook render + rebook composer"),
                        ("signed", "rebook render + composer + DKIM signature")):  # fmt: skip
        seconds = timings[name]
        print(
            f"  {label:42s} {seconds:6.2f} s  {n / seconds:7,.0f} msg/s  {seconds / n * 1e6:6.0f} µs/msg"
        )
    print(
        f"  overhead of rebook's rendering on the bare package: {timings['stdlib'] / timings['bare']:.2f}x (target < 1.5x)"
    )
    print(
        f"  rebook as shipped against the bare package:         {timings['rebook'] / timings['bare']:.2f}x"
    )
    print(f"  parsed back identically: {len(checked) - mismatches}/{len(checked)} sampled messages")
    print(
        f"  DKIM signatures dkim.verify accepts: {len(checked) - unverified}/{len(checked)} sampled"
    )
    print("DKIM signature alone (rsa-sha256, relaxed/relaxed, 2048-bit key), one core:")
    for label, (count, seconds) in signing.items():
        print(
            f"  {label:42s} {count / seconds:7,.0f} sig/s  {seconds / count * 1e3:6.2f} ms/sig  ({count:,} signed)"
        )


def dkim_config():
    """A [dkim] table with a key made for this run."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from pydantic import SecretStr

    from campaigns.config import Dkim

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Dkim(domain="waso.example", selector="bench", private_key=SecretStr(pem.decode()))


def verified(message: bytes, signer: DkimSigner) -> bool:
    import dkim

    _, value = signer.dns_record()
    return dkim.verify(message, dnsfunc=lambda asked, timeout=5: value.encode())


def signing_rates(messages: list[bytes], config, now, dkimpy_count: int) -> dict:
    """Seconds to sign composed messages: rebook's signer, then ``dkim.sign`` as shipped."""
    import dkim

    signer, pem = DkimSigner(config), config.private_key.get_secret_value().encode()

    started = time.perf_counter()
    for message in messages:
        signer.sign(message, now)
    ours = time.perf_counter() - started
    sample = messages[:dkimpy_count]
    include = [*SIGNED, b"from"]
    started = time.perf_counter()
    for message in sample:
        dkim.sign(message, b"bench", b"waso.example", pem, canonicalize=(b"relaxed", b"relaxed"),
                  include_headers=include)  # fmt: skip
    shipped = time.perf_counter() - started
    return {
        "rebook's signer (dkimpy + OpenSSL RSA)": (len(messages), ours),
        "dkim.sign as shipped (pure Python RSA)": (len(sample), shipped),
    }


if __name__ == "__main__":
    main()
