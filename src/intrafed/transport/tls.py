"""TLS over an accepted or opened TCP connection: the handshake with an alert on refusal,
and OpenSSL's errors in words an administrator can act on."""

from __future__ import annotations

import asyncio
import os
import re
import ssl
from asyncio import sslproto

_SSL_DETAIL_RE = re.compile(r"^\[[^\]]*\]\s*(.*?)\s*\(_ssl\.c:\d+\)$")


def ssl_reason(exc: ssl.SSLError) -> str:
    """OpenSSL's words without the C source location."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    match = _SSL_DETAIL_RE.match(text)
    if match is None:
        return text
    return f"{match.group(1)} ({exc.reason})" if exc.reason else match.group(1)


_FAILURE_KINDS = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": "no_certificate",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "no_certificate",
    "CERTIFICATE_VERIFY_FAILED": "untrusted_certificate",
    "TLSV1_ALERT_UNKNOWN_CA": "certificate_refused_by_peer",
    "SSLV3_ALERT_BAD_CERTIFICATE": "certificate_refused_by_peer",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN": "certificate_refused_by_peer",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "certificate_refused_by_peer",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE": "certificate_refused_by_peer",
    "WRONG_VERSION_NUMBER": "not_tls",
    "HTTP_REQUEST": "not_tls",
    "HTTPS_PROXY_REQUEST": "not_tls",
    "UNKNOWN_PROTOCOL": "not_tls",
    "PACKET_LENGTH_TOO_LONG": "not_tls",
    "RECORD_LAYER_FAILURE": "not_tls",
    "UNSUPPORTED_PROTOCOL": "protocol_version",
    "TLSV1_ALERT_PROTOCOL_VERSION": "protocol_version",
    "NO_PROTOCOLS_AVAILABLE": "protocol_version",
    "NO_SHARED_CIPHER": "no_shared_cipher",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "no_shared_cipher",
}
"""OpenSSL's reason codes, in the few words the metrics count handshake failures by."""
_VERIFY_KINDS = {10: "certificate_expired", 62: "hostname_mismatch", 64: "hostname_mismatch"}
"""X509 verify codes with a kind of their own (expired; host name or IP mismatch)."""


def failure_kind(exc: OSError) -> str:
    """Why a handshake failed, from a small fixed set (a metric label): ``no_certificate``,
    ``untrusted_certificate``, ``not_tls`` …, ``connection_lost``, else ``other``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _VERIFY_KINDS.get(exc.verify_code, "untrusted_certificate")
    if isinstance(exc, ssl.SSLError):
        return _FAILURE_KINDS.get(exc.reason or "", "other")
    return "connection_lost"


def os_reason(exc: OSError) -> str:
    """A socket or TLS error in one line."""
    if isinstance(exc, ssl.SSLError):
        return ssl_reason(exc)
    # errno first: asyncio rewords some errors (bind) around the system's message.
    if exc.errno:
        return os.strerror(exc.errno)
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "the peer closed the connection"
    return str(exc) or type(exc).__name__


class _AlertingProtocol(sslproto.SSLProtocol):
    """asyncio's TLS protocol, but a failed handshake sends OpenSSL's alert (certificate
    required, unknown CA, protocol version …) before the socket closes: asyncio leaves it
    in the outgoing BIO, so the peer's admin would see a bare EOF and no reason.

    And a close a peer can tell from a crash: once our close_notify is out, what the peer
    sends is read and discarded until its FIN (or the shutdown timeout) — OpenSSL 3.0
    fails the shutdown on application data that crossed our close_notify, and the reset
    that follows could destroy the close_notify before the peer reads it; TLS 1.3 hides
    the record type, so the peer's own close_notify cannot be told from data there.
    ``close_notify_received`` tells the peer's close_notify from a bare FIN (asyncio
    calls ``eof_received`` for both)."""

    close_notify_received = False
    """Whether the peer ended the TLS stream with close_notify, the socket still open."""

    def buffer_updated(self, nbytes: int) -> None:
        if self._state is sslproto.SSLProtocolState.SHUTDOWN:  # type: ignore[attr-defined]
            return
        super().buffer_updated(nbytes)

    def _call_eof_received(self) -> None:
        # Before the socket's EOF (``_eof_received``), only a close_notify read from the
        # stream ends it; after, asyncio reports the bare FIN the same way.
        if not self._eof_received:  # type: ignore[attr-defined]  # not in typeshed
            self.close_notify_received = True
        super()._call_eof_received()  # type: ignore[misc]  # not in typeshed

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None and self._transport is not None:
            self._process_outgoing()  # type: ignore[attr-defined]  # not in typeshed
        super()._on_handshake_complete(handshake_exc)


class TlsUpgrade:
    """TLS over ``raw`` for ``protocol`` (asyncio 3.11's ``start_tls`` steps, with
    ``_AlertingProtocol``), started at once: bytes read from now on go to the handshake,
    even on a loop (uvloop) that starts reading after ``connection_made`` whatever the
    protocol paused. ``transport()`` waits for the handshake."""

    def __init__(
        self,
        raw: asyncio.Transport,
        protocol: asyncio.Protocol,
        context: ssl.SSLContext,
        *,
        server_side: bool,
        server_hostname: str | None,
        handshake_timeout: float,
        shutdown_timeout: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        self._raw = raw
        self._waiter: asyncio.Future[None] = loop.create_future()
        self._tls = _AlertingProtocol(
            loop,
            protocol,
            context,
            self._waiter,
            server_side,
            server_hostname,
            ssl_handshake_timeout=handshake_timeout,  # type: ignore[arg-type]  # a float works
            ssl_shutdown_timeout=shutdown_timeout,
            call_connection_made=False,
        )
        raw.set_protocol(self._tls)
        self._tls.connection_made(raw)
        raw.resume_reading()

    async def transport(self) -> asyncio.Transport:
        """The TLS transport the protocol uses from now on; the ``ssl.SSLError`` when the
        handshake fails."""
        try:
            await self._waiter
        except BaseException:
            self._raw.close()
            raise
        tls = self._tls
        return tls._app_transport

    @property
    def close_notify_received(self) -> bool:
        """Whether the peer ended the stream with close_notify: it closed on purpose, not
        by dying (a killed process's kernel sends a bare FIN)."""
        return self._tls.close_notify_received

    def close_without_notify(self) -> None:
        """Close the socket after what is written, without close_notify: the peer sees the
        stream end as if this process had died (see ``close_notify_received``)."""
        self._raw.close()
