"""The boundary with aiosmtplib, which connects, greets, EHLOs and does STARTTLS: one
command at a time under its own timeout, answered by a `Reply`, with every third-party
exception translated into `SessionFailed`. The transaction itself (MAIL onwards) runs on
`relay.deliver.channel.SmtpChannel`, which takes over the transport.

A failure code from the server is a reply, not an exception; only what leaves the
session unusable (timeout, connection lost, a reply without a valid code, TLS failure)
raises. Replies pass through response_transcode here, before anyone classifies them.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable
from typing import cast

import aiosmtplib

from relay.deliver.errors import FailureKind
from relay.deliver.settings import DeliverySettings
from relay.deliver.transcode import transcode
from relay.outcome import Phase, Reply

__all__ = ["SessionFailed", "SmtpSession", "translate"]


class SessionFailed(Exception):
    """A step failed in a way that is not an ordinary reply. `broken`: the connection
    cannot be used any more."""

    def __init__(
        self, kind: FailureKind, phase: Phase, reply: Reply, detail: str = "", broken: bool = True
    ) -> None:
        super().__init__(f"{phase.value}: {reply}")
        self.kind = kind
        self.phase = phase
        self.reply = reply
        self.detail = detail
        self.broken = broken


def translate(exc: BaseException, phase: Phase, timeout: float) -> SessionFailed:
    """aiosmtplib / ssl / OSError -> SessionFailed, with a reply relay writes itself."""
    detail = f"{type(exc).__name__}: {exc}"
    what = phase.value.upper()
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        # Only reached for replies without a valid code ("Malformed SMTP response line").
        return SessionFailed(
            FailureKind.PROTOCOL, phase, Reply.parse(None, exc.message, local=True), detail
        )
    if isinstance(exc, TimeoutError | aiosmtplib.SMTPTimeoutError):
        reply = Reply.make(451, "4.4.2", f"timeout after {timeout:g}s waiting for {what} reply")
        return SessionFailed(FailureKind.TIMEOUT, phase, reply, detail)
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        reply = Reply.make(451, "4.7.5", f"TLS negotiation failed: {_reason(exc)}")
        return SessionFailed(FailureKind.TLS, phase, reply, detail)
    if isinstance(exc, OSError | aiosmtplib.SMTPServerDisconnected | aiosmtplib.SMTPConnectError):
        reply = Reply.make(451, "4.4.2", f"connection lost during {what}: {_reason(exc)}")
        if phase is Phase.CONNECT:
            reply = Reply.make(451, "4.4.1", f"connection failed: {_reason(exc)}")
        return SessionFailed(FailureKind.NETWORK, phase, reply, detail)
    reply = Reply.make(451, "4.3.0", f"{what} failed: {_reason(exc)}")
    return SessionFailed(FailureKind.PROTOCOL, phase, reply, detail)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return str(exc.verify_message)
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    cause = exc.__cause__
    text = str(exc) or type(exc).__name__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text} ({cause})"
    return text


class SmtpSession:
    """An aiosmtplib client speaking for one settings; owns the SMTP object."""

    def __init__(self, smtp: aiosmtplib.SMTP, settings: DeliverySettings) -> None:
        self.smtp = smtp
        self.settings = settings

    @property
    def connected(self) -> bool:
        return self.smtp.is_connected

    def supports(self, extension: str) -> bool:
        return self.smtp.supports_extension(extension)

    @property
    def extensions(self) -> dict[str, str]:
        return dict(self.smtp.esmtp_extensions)

    def _reply(self, code: int, text: str) -> Reply:
        settings = self.settings
        return transcode(
            Reply.parse(code, text),
            settings.response_transcode_pattern,
            settings.response_transcode_replace,
        )

    async def _run(
        self, phase: Phase, seconds: float, call: Awaitable[aiosmtplib.SMTPResponse]
    ) -> Reply:
        try:
            response = await call
        except aiosmtplib.SMTPResponseException as exc:
            if 200 <= exc.code <= 599:
                # EHLO/HELO/DATA/greeting raise for failure codes: still just a reply.
                return self._reply(exc.code, exc.message)
            self.abort()
            raise translate(exc, phase, seconds) from exc
        except ValueError as exc:
            if isinstance(exc, ssl.SSLError):
                self.abort()
                raise translate(exc, phase, seconds) from exc
            # aiosmtplib refuses CR/LF/NUL in arguments before sending anything.
            reply = Reply.make(501, "5.5.2", f"refused to send {phase.value.upper()}: {exc}")
            raise SessionFailed(FailureKind.LOCAL, phase, reply, str(exc), broken=False) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self.abort()
            raise translate(exc, phase, seconds) from exc
        reply = self._reply(response.code, response.message)
        if not 200 <= response.code <= 599:
            self.abort()
            raise SessionFailed(FailureKind.PROTOCOL, phase, reply, "reply without a valid code")
        return reply

    async def greeting(self, seconds: float) -> Reply:
        return await self._run(Phase.GREETING, seconds, self.smtp.connect(timeout=seconds))

    async def ehlo(self, hostname: str, seconds: float) -> Reply:
        return await self._run(
            Phase.EHLO, seconds, self.smtp.ehlo(hostname=hostname, timeout=seconds)
        )

    async def helo(self, hostname: str, seconds: float) -> Reply:
        return await self._run(
            Phase.EHLO, seconds, self.smtp.helo(hostname=hostname, timeout=seconds)
        )

    async def starttls(
        self, context: ssl.SSLContext, server_hostname: str | None, seconds: float
    ) -> Reply:
        call = self.smtp.starttls(
            server_hostname=server_hostname, tls_context=context, timeout=seconds
        )
        return await self._run(Phase.STARTTLS, seconds, call)

    def peer_certificate(self) -> dict[str, object] | None:
        ssl_object = self.smtp.get_transport_info("ssl_object")
        if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
            return None
        cert = ssl_object.getpeercert()
        return dict(cert) if cert else None

    @property
    def transport(self) -> asyncio.Transport:
        """The connected transport, for `SmtpChannel` to take over after EHLO/STARTTLS."""
        transport = self.smtp.transport
        if transport is None or transport.is_closing():
            lost = aiosmtplib.SMTPServerDisconnected("Connection lost")
            raise translate(lost, Phase.EHLO, self.settings.ehlo_timeout)
        return cast(asyncio.Transport, transport)

    def abort(self) -> None:
        self.smtp.close()
