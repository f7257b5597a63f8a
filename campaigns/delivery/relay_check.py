"""``rebook check --smtp``: reach the relay one step at a time, so a failure names its step.

A send connects, sets up TLS and logs in as one call, and one failure reads
like another: a relay that answered but offers no login would be "cannot
reach". Here each step is taken on its own (connect, TLS, STARTTLS offered,
AUTH offered, login) and each failure says what happened and what to change.
"""

from __future__ import annotations

import ssl

import aiosmtplib

from campaigns.config import Smtp
from campaigns.delivery.transports.smtp import certificate_problem


class RelayProblem(Exception):
    """The step that failed, in the owner's words."""


async def reach_relay(config: Smtp) -> str:
    """Connect, set up TLS and log in as a run would; say how far it got, or raise RelayProblem."""
    where = f"{config.host}:{config.port}"
    client = aiosmtplib.SMTP(
        hostname=config.host, port=config.port, use_tls=config.security == "tls",
        start_tls=False, tls_context=_tls_context(config),
        timeout=config.timeout.total_seconds(),
    )  # fmt: skip
    try:
        await _step(client.connect(), config, where, "connect")
        await _step(client.ehlo(), config, where, "connect")
        if config.security == "starttls":
            if not client.supports_extension("starttls"):
                raise RelayProblem(
                    f"smtp: {where} answered but does not offer STARTTLS, so rebook will not "
                    "send the password and mail in clear: use security = 'tls' (usually port "
                    "465) if the relay speaks TLS from the first byte, or another relay"
                )
            await _step(client.starttls(), config, where, "tls")
            await _step(client.ehlo(), config, where, "tls")  # what it offers inside TLS
        if config.username is not None:
            await _log_in(client, config, where)
    finally:
        client.close()
    who = f" as {config.username}" if config.username else ""
    return f"smtp: connected to {where} ({config.security}){who}"


async def _log_in(client: aiosmtplib.SMTP, config: Smtp, where: str) -> None:
    if not client.supports_extension("auth"):
        tls = "" if config.security != "none" else (
            "; many relays offer it only over TLS: try security = 'starttls'"
        )  # fmt: skip
        raise RelayProblem(
            f"smtp: {where} answered but offers no login (AUTH) while smtp.username "
            f"{config.username!r} is set: remove smtp.username for a relay that takes mail "
            f"without a login, or check smtp.host and smtp.port{tls}"
        )
    if config.password is None:
        raise RelayProblem(
            f"smtp: smtp.username {config.username!r} is set but REBOOK_SMTP__PASSWORD is not"
        )
    try:
        await client.login(config.username, config.password.get_secret_value())
    except aiosmtplib.SMTPAuthenticationError as error:
        raise RelayProblem(
            f"smtp: {where} refused the login of smtp.username {config.username!r} "
            f"(check REBOOK_SMTP__PASSWORD): {error}"
        ) from None
    except aiosmtplib.SMTPException as error:  # no mechanism both sides know, a dropped line
        raise RelayProblem(f"smtp: {where}: the login did not complete: {error}") from None


async def _step(awaitable, config: Smtp, where: str, stage: str):
    """Await one step; a failure becomes the RelayProblem that names it."""
    try:
        return await awaitable
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        raise RelayProblem(_explain(error, config, where, stage)) from None


def _explain(error: BaseException, config: Smtp, where: str, stage: str) -> str:
    if (problem := certificate_problem(error)) is not None:
        trusted = (
            "the system's certificate authorities" if config.ca_file is None
            else f"the CA in smtp.ca_file {config.ca_file}"
        )  # fmt: skip
        return (
            f"smtp: the TLS certificate of {where} was refused: {problem} (checked against "
            f"{trusted}; is smtp.host the name on the certificate?)"
        )
    tls_error = _ssl_error(error)
    if tls_error is not None or stage == "tls":
        hint = (
            "security = 'tls' needs a port that speaks TLS from the first byte (usually "
            "465); on 587 or 25 use 'starttls'"
            if config.security == "tls"
            else "the relay offered STARTTLS but the TLS handshake failed"
        )
        return f"smtp: {where} refused TLS: {tls_error or error} ({hint})"
    return f"smtp: cannot connect to {where}: {error} (check smtp.host and smtp.port)"


def _ssl_error(error: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _tls_context(config: Smtp) -> ssl.SSLContext | None:
    """The private CA of ``ca_file`` alone when set, as the transport trusts it."""
    if config.ca_file is None or config.security == "none":
        return None
    return ssl.create_default_context(cafile=str(config.ca_file))
