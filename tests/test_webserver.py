"""``[web] listen``: its form checked when the config loads, its address when check or run binds it."""

from __future__ import annotations

import json
import socket

import pytest

from .service import RunningService
from .smtpd import SmtpServer, free_port
from .test_deploy import listener  # noqa: F401 (a fixture)
from .test_web import serving_clinic


@pytest.mark.parametrize(
    ("listen", "said"),
    [
        ("not a host:18090", "'not a host' is neither an IP address nor a host name"),
        ("::1:8080", "an IPv6 address goes in brackets ('[::1]:8080')"),
        ("[::1:8080", "an IPv6 address goes in brackets"),
        ("[fe80::zz]:8080", "'[fe80::zz]' is not an IPv6 address"),
        ("127.0.0.1:65536", "the port '65536' is not a number from 1 to 65535"),
        ("127.0.0.1:0", "the port '0' is not a number from 1 to 65535"),
        ("127.0.0.1", "expected HOST:PORT like '127.0.0.1:8080'"),
        (":8080", "expected HOST:PORT like '127.0.0.1:8080'"),
    ],
)
def test_a_listen_of_the_wrong_form_is_named_when_the_config_loads(sqlite_clinic, listen, said):
    sqlite_clinic.write_config(f'[web]\nlisten = "{listen}"\n')
    result = sqlite_clinic.rebook("check")
    assert result.code == 2 and "web.listen" in result.err and said in result.err, result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("listen", ["127.0.0.1:{port}", "[::1]:{port}", "localhost:{port}"])
def test_a_listen_this_machine_can_bind_is_fine(sqlite_clinic, listen):
    sqlite_clinic.write_config(f'[web]\nlisten = "{listen.format(port=free_port())}"\n')
    result = sqlite_clinic.rebook("check")
    assert result.code == 0 and "web.listen" not in result.err, result.err


@pytest.mark.parametrize(
    ("listen", "said"),
    [
        ("192.0.2.1:8080", "192.0.2.1 is not an address of this machine"),
        ("no-such-host.invalid:8080", "'no-such-host.invalid' is not a name this machine can"),
        ("127.0.0.1:80", "no permission to listen on port 80"),
    ],
)
def test_check_refuses_a_listen_that_cannot_be_bound(sqlite_clinic, listen, said):
    import os

    if listen.endswith(":80") and os.geteuid() == 0:
        pytest.skip("root may listen on port 80")
    sqlite_clinic.write_config(f'[web]\nlisten = "{listen}"\n')
    result = sqlite_clinic.rebook("check")
    assert result.code == 2, result.err
    assert f"config.toml: web.listen '{listen}': {said}" in result.err
    assert "config OK" not in result.out
    off = sqlite_clinic.rebook("check", env={"REBOOK_WEB__SERVE": "false"})
    assert off.code == 0, off.err  # another worker serves the endpoint: nothing to bind here


def test_check_warns_when_the_port_is_in_use_rebook_run_may_hold_it(sqlite_clinic):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = sqlite_clinic.rebook("check", env={"REBOOK_WEB__LISTEN": f"127.0.0.1:{port}"})
    assert result.code == 0, result.err
    assert (
        f"warning: REBOOK_WEB__LISTEN: web.listen '127.0.0.1:{port}': port {port} on 127.0.0.1 "
        "is in use by another program (or another rebook run): by this clinic's rebook run "
        "already?"
    ) in result.err


def test_rebook_run_exits_2_and_sends_nothing_when_it_cannot_serve_the_links(
    clinic,
    listener,  # noqa: F811
):
    """The port is another program's: no link of a marketing email would reach rebook."""
    sock, address = listener
    with SmtpServer() as smtp, socket.create_server(("127.0.0.1", 0)) as taken:
        serving_clinic(clinic, smtp.port)  # its campaign runs as soon as the service starts
        port = taken.getsockname()[1]
        text = clinic.config.read_text().replace("listen = ", f'listen = "127.0.0.1:{port}"\n#')
        clinic.config.write_text(text)
        env = {"NOTIFY_SOCKET": address}
        with RunningService(clinic.folder, "--log-format", "json", env=env) as service:
            assert service.process.wait(timeout=60) == 2
            service.stop()
        assert smtp.handler.received == []
    [line] = service.lines  # one JSON object, rebook's words, nothing started
    entry = json.loads(line)
    assert entry["level"] == "error"
    assert entry["event"].startswith(
        f"config.toml: web.listen '127.0.0.1:{port}': port {port} on 127.0.0.1 is in use by "
        "another program (or another rebook run); the unsubscribe links of every marketing "
        "email lead there, so rebook run does not start without it."
    )
    assert "[web] serve = false" in entry["event"]
    sock.settimeout(0.5)
    with pytest.raises(TimeoutError):
        sock.recv(4096)  # never said READY


def test_a_worker_with_serve_false_runs_without_the_endpoint(clinic):
    with SmtpServer() as smtp, socket.create_server(("127.0.0.1", 0)) as taken:
        serving_clinic(clinic, smtp.port)
        port = taken.getsockname()[1]  # held by the worker that serves the links
        env = {"REBOOK_WEB__LISTEN": f"127.0.0.1:{port}", "REBOOK_WEB__SERVE": "false"}
        with RunningService(clinic.folder, env=env) as service:
            service.wait_for("run finished")
            assert service.stop() == 0
        assert len(smtp.handler.received) == 3
    assert "web endpoint not served here: [web] serve = false" in service.log()
    assert "web endpoint listening" not in service.log()
