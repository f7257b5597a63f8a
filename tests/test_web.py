"""The unsubscribe endpoint, served by the real ``rebook run``, spoken to over HTTP."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import create_engine, select

from campaigns.content.tokens import make_token
from campaigns.durations import Rate
from campaigns.store.tables import client_suppressions, suppressions
from jobs.iplimit import PerAddressLimit
from jobs.pages import Pages
from jobs.web import Site, make_app

from .service import RunningService
from .smtpd import SmtpServer, free_port
from .test_delivery import clinic_with
from .test_service import add_campaign
from .webserver import served


def serving_clinic(clinic, smtp_port: int, people: int = 6) -> str:
    """A clinic whose service listens on a free port; returns the endpoint's base URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    clinic_with(clinic, smtp_port, people)
    add_campaign(clinic, "tick", "every 1h")
    clinic.config.write_text(
        clinic.config.read_text() + f'\n[web]\nlisten = "127.0.0.1:{port}"\npublic_url = "{base}"\n'
    )
    return base


def link_of(smtp, address: str) -> str:
    [message] = [m.message for m in smtp.handler.received if m.recipients == [address]]
    return re.search(r"<(http[^>]+)>", message["List-Unsubscribe"])[1]


def suppressed(clinic) -> tuple[list, list]:
    engine = clinic.engine()
    with engine.connect() as connection:
        ids = connection.execute(
            select(client_suppressions.c.client_id, client_suppressions.c.reason)
        ).all()
        addresses = connection.execute(select(suppressions.c.address, suppressions.c.reason)).all()
    return [tuple(row) for row in ids], [tuple(row) for row in addresses]


def test_one_click_unsubscribe_as_a_mail_provider_posts_it(clinic):
    with SmtpServer() as smtp:
        base = serving_clinic(clinic, smtp.port)
        with RunningService(clinic.folder) as service:
            service.wait_for("run finished")
            link = link_of(smtp, "person0@example.com")
            assert link.startswith(base + "/unsubscribe/")
            answer = httpx.post(link, data={"List-Unsubscribe": "One-Click"})
            assert answer.status_code == 200 and "set-cookie" not in answer.headers
            boundary = "rebooktest"
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\n"
                    f"One-Click\r\n--{boundary}--\r\n")  # fmt: skip
            multipart = httpx.post(
                link_of(smtp, "person2@example.com"), content=body.encode(),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )  # fmt: skip
            assert multipart.status_code == 200
            assert service.stop() == 0
    ids, addresses = suppressed(clinic)
    assert ids == [("c000", "unsubscribed"), ("c002", "unsubscribed")]
    assert ("person0@example.com", "unsubscribed") in addresses


def test_the_page_confirms_then_offers_to_resubscribe(clinic):
    with SmtpServer() as smtp:
        base = serving_clinic(clinic, smtp.port)
        with RunningService(clinic.folder) as service:
            service.wait_for("run finished")
            link = link_of(smtp, "person4@example.com")
            page = httpx.get(link)
            assert page.status_code == 200 and "Waso Physiotherapy" in page.text
            assert '<form method="post">' in page.text and "<script" not in page.text
            assert suppressed(clinic) == ([], [])  # looking changes nothing
            done = httpx.post(link, data={"action": "unsubscribe"})
            assert "You are unsubscribed" in done.text and "Subscribe again" in done.text
            assert suppressed(clinic)[0] == [("c004", "unsubscribed")]
            back = httpx.post(link, data={"action": "resubscribe"})
            assert back.status_code == 200 and "subscribed again" in back.text
            assert suppressed(clinic) == ([], [])
            assert httpx.get(base + "/healthz").text == "ok"
            assert service.stop() == 0


def test_a_forged_token_an_odd_body_or_path_changes_nothing(clinic):
    with SmtpServer() as smtp:
        base = serving_clinic(clinic, smtp.port)
        with RunningService(clinic.folder) as service:
            service.wait_for("web endpoint listening")
            link = base + "/unsubscribe/YzAwMA.AAAAAAAAAAAAAAAAAAAAAA"  # c000, a made-up signature
            forged = httpx.post(link, data={"List-Unsubscribe": "One-Click"})
            assert forged.status_code == 400 and "Nothing was changed" in forged.text
            assert httpx.get(link).status_code == 400
            huge = httpx.post(base + "/unsubscribe/x", content=b"a" * 100_000)
            assert huge.status_code in (400, 413)
            missing = httpx.get(base + "/wp-admin")
            assert missing.status_code == 404 and "Traceback" not in missing.text
            assert service.stop() == 0
    assert suppressed(clinic) == ([], [])


def test_a_client_unsubscribes_in_a_real_browser(clinic, tmp_path):
    """Chromium, driven over WebDriver (Debian's chromedriver), clicks the page's button."""
    import subprocess
    import time

    from .conftest import debian_tool
    from .test_browser import FLAGS

    driver_path, chromium = debian_tool("chromedriver"), debian_tool("chromium")
    with SmtpServer() as smtp:
        serving_clinic(clinic, smtp.port)
        with RunningService(clinic.folder) as service:
            service.wait_for("run finished")
            link = link_of(smtp, "person0@example.com")
            port = free_port()
            driver = subprocess.Popen([driver_path, f"--port={port}"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)  # fmt: skip
            try:
                webdriver = f"http://127.0.0.1:{port}"
                for _ in range(100):  # until chromedriver answers
                    try:
                        httpx.get(webdriver + "/status")
                        break
                    except httpx.TransportError:
                        time.sleep(0.1)
                options = {
                    "binary": chromium,
                    "args": [*FLAGS, f"--user-data-dir={tmp_path / 'p'}"],
                }
                session = httpx.post(webdriver + "/session", timeout=60, json={
                    "capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}
                }).json()["value"]["sessionId"]  # fmt: skip
                at = f"{webdriver}/session/{session}"
                httpx.post(at + "/url", json={"url": link}, timeout=30)
                found = httpx.post(
                    at + "/element", json={"using": "css selector", "value": "button"}
                )
                button = next(iter(found.json()["value"].values()))
                httpx.post(f"{at}/element/{button}/click", json={}, timeout=30)
                page = httpx.get(at + "/source").json()["value"]
                httpx.delete(at)
            finally:
                driver.terminate()
                driver.wait(timeout=10)
            assert service.stop() == 0
    assert "You are unsubscribed" in page and "Waso Physiotherapy" in page
    assert suppressed(clinic)[0] == [("c000", "unsubscribed")]


def test_check_warns_when_links_would_not_reach_a_provider(sqlite_clinic):
    with SmtpServer() as smtp:
        clinic_with(sqlite_clinic, smtp.port)  # transport = "smtp", the default public_url
        plain = sqlite_clinic.rebook("check")
        assert plain.code == 0
        assert "web.public_url 'http://127.0.0.1:8080' is not https" in plain.err
        assert "points at 127.0.0.1, this machine" in plain.err
        sqlite_clinic.config.write_text(
            sqlite_clinic.config.read_text() + '\n[web]\npublic_url = "https://mail.waso.example"\n'
        )
        good = sqlite_clinic.rebook("check")
        assert good.code == 0 and "public_url" not in good.err


def test_one_address_over_its_limit_gets_429_and_changes_nothing(clinic):
    """Another address, or a client the trusted proxy forwards, is unaffected."""
    with SmtpServer() as smtp:
        base = serving_clinic(clinic, smtp.port)
        clinic.config.write_text(
            clinic.config.read_text() + 'rate_limit_per_ip = "1/h"\nburst_per_ip = 2\n'
        )
        other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))
        with RunningService(clinic.folder) as service, other:
            service.wait_for("run finished")
            link = link_of(smtp, "person0@example.com")
            assert [other.get(base + "/healthz").status_code for _ in range(2)] == [200, 200]
            refused = other.post(link, data={"List-Unsubscribe": "One-Click"})
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
            assert suppressed(clinic) == ([], [])  # refused: nothing changed
            # 127.0.0.2 is no trusted proxy: the address it claims to forward is ignored
            spoofed = other.get(base + "/healthz", headers={"X-Forwarded-For": "198.51.100.1"})
            assert spoofed.status_code == 429
            # 127.0.0.1, another address (and the trusted proxy), is unaffected
            done = httpx.post(link, data={"List-Unsubscribe": "One-Click"})
            assert done.status_code == 200 and suppressed(clinic)[0] == [("c000", "unsubscribed")]
            assert [httpx.get(base + "/healthz").status_code for _ in range(2)] == [200, 429]
            # clients the proxy forwards each count on their own
            forwarded = {"X-Forwarded-For": "203.0.113.7"}
            assert httpx.get(base + "/healthz", headers=forwarded).status_code == 200
            assert service.stop() == 0


def test_many_one_click_posts_at_once_are_each_answered_after_their_write(clinic):
    """The endpoint writes what arrives together as one batch: every POST still lands."""
    import asyncio

    with SmtpServer() as smtp:
        base = serving_clinic(clinic, smtp.port)
        with RunningService(clinic.folder) as service:
            service.wait_for("run finished")
            links = [link_of(smtp, f"person{n}@example.com") for n in (0, 2, 4)]

            async def post_all() -> list[int]:
                async with httpx.AsyncClient() as client:
                    answers = await asyncio.gather(*(
                        client.post(link, data={"List-Unsubscribe": "One-Click"})
                        for link in links * 10  # each client asks ten times, all at once
                    ))  # fmt: skip
                return [answer.status_code for answer in answers]

            assert asyncio.run(post_all()) == [200] * 30
            assert httpx.get(base + "/healthz").text == "ok"
            assert service.stop() == 0
    ids, addresses = suppressed(clinic)
    assert sorted(ids) == [
        ("c000", "unsubscribed"),
        ("c002", "unsubscribed"),
        ("c004", "unsubscribed"),
    ]
    assert sorted(addresses) == [(f"person{n}@example.com", "unsubscribed") for n in (0, 2, 4)]


def test_an_old_link_of_a_forgotten_client_writes_nothing_back(clinic):
    """Mail scanners POST to old links: after ``forget``, neither the one-click POST nor
    the page's buttons store the client's id or address again."""
    with SmtpServer() as smtp:
        serving_clinic(clinic, smtp.port)
        with RunningService(clinic.folder) as service:
            service.wait_for("run finished")
            link = link_of(smtp, "person0@example.com")
            assert clinic.rebook("forget", "person0@example.com", "--yes").code == 0
            for form in ({"List-Unsubscribe": "One-Click"}, {"action": "unsubscribe"}):
                assert httpx.post(link, data=form).status_code == 200
                assert suppressed(clinic) == ([], [])
            assert service.stop() == 0


def test_the_page_says_when_the_clinic_keeps_a_client_off_the_list(clinic):
    """An owner's unsubscribe, a hard bounce, a forget: the page says the clinic stopped the
    emails and how to ask, offers no button that cannot work, and never says which it was."""
    from datetime import UTC, datetime

    from campaigns.delivery.suppression import suppress

    with SmtpServer() as smtp:
        serving_clinic(clinic, smtp.port, people=10)
        with RunningService(clinic.folder) as service:
            service.wait_for("run finished")
            own, manual, bounced, forgotten = (
                link_of(smtp, f"person{n}@example.com") for n in (0, 2, 4, 6)
            )
            httpx.post(own, data={"List-Unsubscribe": "One-Click"})
            again = httpx.get(own)  # already unsubscribed: said, not offered again
            assert "You are unsubscribed" in again.text and "Subscribe again" in again.text
            assert clinic.rebook("unsubscribe", "person2@example.com").code == 0
            with clinic.engine().begin() as connection:
                suppress(connection, "person4@example.com", "bounced", "550", datetime.now(UTC))
            assert clinic.rebook("forget", "person6@example.com", "--yes").code == 0
            pages = {}
            for link in (manual, bounced, forgotten):
                shown = httpx.get(link)
                posted = httpx.post(link, data={"List-Unsubscribe": "One-Click"})
                before = suppressed(clinic)
                back = httpx.post(link, data={"action": "resubscribe"})
                assert suppressed(clinic) == before  # the client's button changed nothing
                pages[link] = (shown.text, posted.text, back.text)
                assert shown.text == posted.text and "You are unsubscribed" in shown.text
                assert "Subscribe again" not in shown.text and "<form" not in shown.text
                assert "please ask Waso Physiotherapy: reply to one of its emails" in shown.text
                assert back.status_code == 200 and "You are still unsubscribed" in back.text
                assert "subscribed again" not in back.text
            assert len(set(pages.values())) == 1  # which of the three it was, nobody can tell
            assert service.stop() == 0
    ids, addresses = suppressed(clinic)
    assert ids == [("c000", "unsubscribed"), ("c002", "manual"), ("c004", "unsubscribed")]
    assert ("person2@example.com", "manual") in addresses
    assert ("person4@example.com", "bounced") in addresses


def site() -> Site:
    limit = PerAddressLimit(Rate(20, timedelta(seconds=1)), 40)
    return Site(b"secret-of-at-least-16-bytes", Pages("Waso Physiotherapy"), limit, ("127.0.0.1",))


def test_healthz_lists_the_background_loops_failing_now(sqlite_clinic):
    failing: dict[str, str] = {}
    app = make_app(sqlite_clinic.engine(), site(), lambda: datetime.now(UTC), lambda: failing)
    with served(app) as base:
        assert (httpx.get(base + "/healthz").status_code, httpx.get(base + "/healthz").text) == (
            200, "ok",
        )  # fmt: skip
        failing.update({"sync": "database is locked", "cliniko": "401 from Cliniko"})
        sick = httpx.get(base + "/healthz")
        assert sick.status_code == 503
        assert sick.text == "cliniko: 401 from Cliniko\nsync: database is locked"
        failing.clear()
        assert httpx.get(base + "/healthz").status_code == 200
    gone = create_engine("postgresql+psycopg://rebook@127.0.0.1:1/rebook")  # nothing listens
    app = make_app(gone, site(), lambda: datetime.now(UTC), lambda: {"sync": "no database"})
    with served(app) as base:
        down = httpx.get(base + "/healthz")
        assert (down.status_code, down.text) == (503, "database unreachable\nsync: no database")


def test_a_new_site_applies_from_the_next_request(sqlite_clinic):
    """What a reload changes (the clinic's name, the limit) without restarting the server."""
    app = make_app(sqlite_clinic.engine(), site(), lambda: datetime.now(UTC))
    link = f"/unsubscribe/{make_token(b'secret-of-at-least-16-bytes', 'c1')}"
    with served(app) as base:
        assert "Waso Physiotherapy" in httpx.get(base + link).text
        strict = PerAddressLimit(Rate(1, timedelta(hours=1)), 1)
        app.configure(Site(b"secret-of-at-least-16-bytes", Pages("Kings Park Physio"), strict))
        assert "Kings Park Physio" in httpx.get(base + link).text
        assert httpx.get(base + link).status_code == 429


def test_a_database_gone_mid_request_is_a_short_503_not_a_traceback():
    gone = create_engine("postgresql+psycopg://rebook@127.0.0.1:1/rebook")  # nothing listens
    link = f"/unsubscribe/{make_token(b'secret-of-at-least-16-bytes', 'c1')}"
    with served(make_app(gone, site(), lambda: datetime.now(UTC))) as base:
        answers = [
            httpx.get(base + link),
            httpx.post(base + link, data={"List-Unsubscribe": "One-Click"}),
            httpx.post(base + link, data={"action": "resubscribe"}),
        ]
    for answer in answers:
        assert answer.status_code == 503 and "try again later" in answer.text


def test_an_owners_unsubscribe_after_the_clients_own_is_the_owners_to_undo(sqlite_clinic):
    from campaigns.delivery.suppression import resubscribe_client, unsubscribe_client
    from campaigns.store.database import write_transaction

    with SmtpServer() as smtp:
        _, engine = clinic_with(sqlite_clinic, smtp.port)
    now = datetime.now(UTC)
    with write_transaction(engine) as connection:
        unsubscribe_client(connection, "c000", "by the client (one-click)", now)
    said = sqlite_clinic.rebook("unsubscribe", "person0@example.com")
    assert said.code == 0 and "their own link cannot undo it" in said.out
    with write_transaction(engine) as connection:
        assert resubscribe_client(connection, "c000") is False  # the page's button
    ids, addresses = suppressed(sqlite_clinic)
    assert ids == [("c000", "manual")] and addresses == [("person0@example.com", "manual")]
