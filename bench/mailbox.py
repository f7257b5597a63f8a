"""Reading the bounce mailbox: 10,000 returned messages from Dovecot over IMAP and from a Maildir.

    python bench/mailbox.py [--messages 10000] [--repeat 2]

Reading only (no classifying): the mailboxes' share of the issue's targets
for the whole pipeline (10,000 over IMAP in under 30 s; from a Maildir at
least 1,000/s with RSS under 150 MB), which reading must stay far below.
Each message is a Postfix-style DSN of about 2.6 KB, each number its own.

IMAP: a private Dovecot (tests/dovecot.py; Debian's dovecot-imapd) on
127.0.0.1, plain IMAP, the messages APPENDed before the clock starts.
Maildir: files written as a mail server delivers them (tmp/, then new/),
on the system's temporary folder.
Each measurement runs in a fresh child process, whose peak RSS is reported:

  read          every message, from no position
  nothing new   a second read from the position the first one left
  read + move   every message read and moved to the processed folder
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)  # not bench/: this file would hide the standard library's mailbox

from campaigns.bounces.mailboxes import ImapBox, MaildirBox  # noqa: E402

DSN = """\
Return-Path: <>
Delivered-To: bounces+{number:08d}@waso.example
Received: by mx.waso.example (Postfix) id 4Xk2{number:08d}; Tue,  2 Dec 2025 10:00:00 +0800 (AWST)
Date: Tue,  2 Dec 2025 10:00:00 +0800 (AWST)
From: MAILER-DAEMON@mx.waso.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: bounces+{number:08d}@waso.example
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4Xk2{number:08d}.1764640800/mx.waso.example"
Message-Id: <20251202020000.4Xk2{number:08d}@mx.waso.example>

This is a MIME-encapsulated message.

--4Xk2{number:08d}.1764640800/mx.waso.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.waso.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

<client{number}@example.net>: host mx.example.net[192.0.2.25] said: 550 5.1.1
    <client{number}@example.net>: Recipient address rejected: User unknown in
    virtual mailbox table (in reply to RCPT TO command)

--4Xk2{number:08d}.1764640800/mx.waso.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.waso.example
X-Postfix-Queue-ID: 4Xk2{number:08d}
Arrival-Date: Tue,  2 Dec 2025 09:59:58 +0800 (AWST)

Final-Recipient: rfc822; client{number}@example.net
Original-Recipient: rfc822;client{number}@example.net
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; 550 5.1.1 <client{number}@example.net>: Recipient address
    rejected: User unknown in virtual mailbox table

--4Xk2{number:08d}.1764640800/mx.waso.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <bounces+{number:08d}@waso.example>
Received: from rebook.waso.example (rebook.waso.example [192.0.2.10])
	by mx.waso.example (Postfix) with ESMTPS id 4Xk2{number:08d}
	for <client{number}@example.net>; Tue,  2 Dec 2025 09:59:58 +0800 (AWST)
From: Waso Physiotherapy <hello@waso.example>
To: client{number}@example.net
Subject: Time for your next massage?
Date: Tue, 02 Dec 2025 01:59:58 -0000
Message-ID: <rebook.{number}@waso.example>
List-Unsubscribe: <https://waso.example/unsubscribe/abc{number}>
List-Unsubscribe-Post: List-Unsubscribe=One-Click
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="==============={number:019d}=="

--4Xk2{number:08d}.1764640800/mx.waso.example--
"""


def dsn(number: int, newline: str) -> bytes:
    return DSN.format(number=number).replace("\n", newline).encode()


def child(kind: str, where: dict, mode: str) -> dict:
    """One measurement, in this (fresh) process: seconds, messages, peak RSS in MB."""
    box = ImapBox(**where) if kind == "imap" else MaildirBox(Path(where["path"]))
    position = None
    if mode == "nothing new":
        for _ in box.read(None):
            pass
        position = box.position
    started = time.perf_counter()
    count = 0
    for item in box.read(position):
        count += 1
        if mode == "read + move":
            box.processed(item.key)
    seconds = time.perf_counter() - started
    box.close()
    return {"seconds": seconds, "messages": count, "rss": peak_rss()}


def peak_rss() -> float:
    """This process's peak RSS in MB: VmHWM, which starts afresh at exec.

    Not getrusage's ru_maxrss: Linux carries the parent's high-water mark
    over fork and exec, so a child would report the bench's own size.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(kind: str, where: dict, mode: str) -> dict:
    arguments = [sys.executable, __file__, "--child", json.dumps([kind, where, mode])]
    done = subprocess.run(arguments, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{kind} {mode} failed:\n{done.stderr}")
    return json.loads(done.stdout)


def report(label: str, result: dict) -> None:
    seconds, count = result["seconds"], result["messages"]
    rate = f"{count / seconds:,.0f}/s" if count else "-"
    print(f"  {label:12} {count:>6,} messages in {seconds:7.3f} s  {rate:>9}  "
          f"peak RSS {result['rss']:5.0f} MB")  # fmt: skip


def bench_imap(messages: int, repeat: int) -> None:
    from tests.dovecot import running_dovecot

    with (
        tempfile.TemporaryDirectory(prefix="rebook-bench-") as folder,
        running_dovecot(Path(folder)) as server,
    ):
        version = subprocess.run(["dovecot", "--version"], capture_output=True, text=True)
        print(f"IMAP: Dovecot {version.stdout.split()[0]} on 127.0.0.1, plain IMAP, "
              f"{messages:,} DSNs of {len(dsn(1, chr(13) + chr(10))):,} bytes")  # fmt: skip
        for _ in range(repeat):
            for mode in ("read", "nothing new", "read + move"):
                account = server.add_user()
                account.append(*[dsn(n, "\r\n") for n in range(messages)])
                report(mode, measure("imap", account.box_options(), mode))


def bench_maildir(messages: int, repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="rebook-bench-") as folder:
        print(f"Maildir: {messages:,} DSNs of {len(dsn(1, chr(10))):,} bytes, on {folder}")
        for number in range(repeat):
            for mode in ("read", "nothing new", "read + move"):
                path = Path(folder) / f"{number}-{mode}"
                deliver(path, messages)
                time.sleep(0.3)  # settled: the read does not wait for the newest
                report(mode, measure("maildir", {"path": str(path)}, mode))


def deliver(path: Path, messages: int) -> None:
    """As a mail server delivers: each file written in tmp/, then renamed into new/."""
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True)
    for n in range(messages):
        name = f"{int(time.time())}.M{n}P{os.getpid()}.bench"
        (path / "tmp" / name).write_bytes(dsn(n, "\n"))
        os.rename(path / "tmp" / name, path / "new" / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--only", choices=["imap", "maildir"])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(child(*json.loads(options.child))))
        return
    if options.only != "maildir":
        bench_imap(options.messages, options.repeat)
    if options.only != "imap":
        bench_maildir(options.messages, options.repeat)


if __name__ == "__main__":
    main()
