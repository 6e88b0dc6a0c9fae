"""An asyncio SIP user agent for one user over one TCP or TLS connection to its home node.

The agent behaves as a client behind NAT does (RFC 5626, RFC 5923): it opens the
connection, keeps it, and the node reaches it over that same connection. A background task
reads what the node sends: responses complete the waiting requests (matched by Via branch
and CSeq method), requests are answered at once and reported as events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from typing import overload

from intrafed import __version__
from intrafed.sip import (
    FramingError,
    RemoteSipError,
    Request,
    Response,
    SipUri,
    StreamFramer,
    Uri,
    parse_message,
)
from intrafed.sip.pidf import PIDF_CONTENT_TYPE, PresenceState, build_pidf, parse_pidf
from intrafed.sip.responses import make_response, warning_value
from intrafed.sip.transaction import ClientKey, ack_for, client_key
from intrafed.ua.dialogs import ImSession, Subscription
from intrafed.ua.events import (
    E,
    Event,
    EventQueue,
    MessageReceived,
    PresenceNotified,
    Reply,
    SessionEnded,
    SessionStarted,
    SipError,
    TypingReceived,
    UaError,
)
from intrafed.ua.requests import (
    ALLOW,
    Dialog,
    Fields,
    LocalAddress,
    authorization,
    build_request,
    im_session_sdp,
    new_branch,
    new_tag,
    sip_uri,
)
from intrafed.ua.settings import UaSettings, open_stream

logger = logging.getLogger(__name__)

USER_AGENT = f"intrafed-ua/{__version__}"
# RFC 3261 §22.1: a request challenged again after an answer is only retried when the new
# challenge says the nonce was stale; this bounds the rounds if a server keeps saying so.
_MAX_AUTH_ROUNDS = 3


class UserAgent:
    """One user on one connection to the home node; use ``async with``, or ``connect()``
    then ``close()``. ``trace`` is called with ("sent"|"received", message)."""

    def __init__(
        self,
        settings: UaSettings,
        *,
        ssl_context: ssl.SSLContext | None = None,
        trace: Callable[[str, Request | Response], None] | None = None,
    ) -> None:
        self.settings = settings
        self.uri = sip_uri(settings.aor)
        if settings.transport not in ("tcp", "tls"):
            raise ValueError(f"transport {settings.transport!r} is not tcp or tls")
        self._ssl = ssl_context
        self._trace = trace
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task[None] | None = None
        self._local: LocalAddress | None = None
        self._pending: dict[ClientKey, asyncio.Future[Response]] = {}
        self._unanswered: dict[ClientKey, Request] = {}
        self._reconnecting: asyncio.Task[None] | None = None
        self._dialogs: dict[str, ImSession | Subscription] = {}
        self._events = EventQueue()
        self._cseq = secrets.randbelow(1000) + 1
        self._register_call_id = self._call_id()
        self._etag: str | None = None
        self.registered = False
        """Whether the node holds a binding of our contact (a 2xx to a REGISTER)."""

    # -- connection --------------------------------------------------------------------

    async def __aenter__(self) -> UserAgent:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the connection (TLS verifies the node's certificate) and start reading."""
        settings = self.settings
        reader, writer = await open_stream(settings, self._ssl)
        sockname = writer.get_extra_info("sockname")
        self._writer = writer
        self._local = LocalAddress(settings.transport, str(sockname[0]), int(sockname[1]))
        self._events.reopen()
        self._read_task = asyncio.create_task(self._read_loop(reader))

    async def close(self) -> None:
        """Close the connection; requests still waiting fail with ``UaError``."""
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
            self._reconnecting = None
        if self._read_task is not None:
            self._read_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._read_task
            self._read_task = None
        self._connection_lost("the connection was closed")
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    @property
    def local(self) -> LocalAddress:
        """The local end of the connection (what our Via and Contact name)."""
        if self._local is None:
            raise UaError("the user agent is not connected")
        return self._local

    @property
    def contact(self) -> str:
        """Our Contact value."""
        return self.local.contact(self.uri.user)

    # -- requests ------------------------------------------------------------------------

    async def register(self, expires: int = 3600) -> Reply:
        """REGISTER our contact for ``expires`` seconds (digest authentication as asked)."""
        return await self._register(self.contact, expires)

    async def unregister(self) -> Reply:
        """Remove our contact (Expires: 0)."""
        return await self._register(self.contact, 0)

    async def message(self, to: str, text: str, content_type: str = "text/plain") -> Reply:
        """Send a pager-mode MESSAGE (RFC 3428)."""
        headers = [("Content-Type", f"{content_type};charset=UTF-8")]
        return await self._out_of_dialog("MESSAGE", sip_uri(to), headers, text.encode())

    async def options(self, uri: str | None = None) -> Reply:
        """Send OPTIONS to ``uri`` (default: our domain, i.e. the node)."""
        target = sip_uri(uri) if uri else sip_uri(f"sip:{self.uri.host}")
        return await self._out_of_dialog("OPTIONS", target, [("Accept", "application/sdp")])

    async def publish(
        self, state: PresenceState, note: str | None = None, expires: int = 3600
    ) -> Reply:
        """PUBLISH our presence (RFC 3903) as a PIDF document; a later call modifies it
        with the SIP-ETag the node gave (and starts over when the node forgot it)."""
        body = build_pidf(f"sip:{self.uri.aor}", state, note)
        base = [
            ("Event", "presence"),
            ("Expires", str(expires)),
            ("Content-Type", PIDF_CONTENT_TYPE),
        ]
        target = sip_uri(self.uri.aor)
        if self._etag is not None:
            try:
                reply = await self._out_of_dialog(
                    "PUBLISH", target, [*base, ("SIP-If-Match", self._etag)], body
                )
            except SipError as exc:
                # RFC 3903 §6.6: 412 means the entity tag is unknown: publish afresh.
                if exc.status != 412:
                    raise
                self._etag = None
            else:
                self._etag = reply.response.headers.get("sip-etag") or self._etag
                return reply
        reply = await self._out_of_dialog("PUBLISH", target, base, body)
        self._etag = reply.response.headers.get("sip-etag")
        return reply

    async def subscribe(self, to: str, expires: int = 3600) -> Subscription:
        """SUBSCRIBE to the presence of ``to``; its NOTIFYs arrive as ``PresenceNotified``."""
        target = sip_uri(to)
        call_id = self._call_id()
        subscription = Subscription(self, target.aor, call_id)
        self._dialogs[call_id] = subscription
        headers = [
            ("Event", "presence"),
            ("Accept", PIDF_CONTENT_TYPE),
            ("Expires", str(expires)),
            ("Contact", self.contact),
        ]
        try:
            request, response = await self._send(
                lambda auth: self._new_request("SUBSCRIBE", target, [*headers, *auth], call_id)
            )
        except BaseException:
            self._dialogs.pop(call_id, None)
            raise
        if subscription.dialog is None:
            subscription.dialog = Dialog.as_uac(request, response)
        else:
            # The first NOTIFY overtook the 200 and made the dialog; the 200's Record-Route
            # is still the route set of the subscriber (RFC 3261 §12.1.2).
            subscription.dialog.local_cseq = request.cseq.number
            if response.record_routes:
                subscription.dialog.route_set = Dialog.as_uac(request, response).route_set
        return subscription

    async def invite_im(self, to: str) -> ImSession:
        """Open a session-mode IM dialog with ``to`` (INVITE with ``m=message`` SDP), ACK
        the 2xx and return the session."""
        target = sip_uri(to)
        call_id = self._call_id()
        headers = [
            ("Contact", self.contact),
            ("Allow", ALLOW),
            ("Content-Type", "application/sdp"),
        ]
        sdp = im_session_sdp(self.local.host)
        request, response = await self._send(
            lambda auth: self._new_request("INVITE", target, [*headers, *auth], call_id, sdp)
        )
        dialog = Dialog.as_uac(request, response)
        ack = dialog.request("ACK", self.local.via(new_branch()), cseq=request.cseq.number)
        self._write(ack)
        session = ImSession(self, dialog, target.aor)
        self._dialogs[call_id] = session
        return session

    async def in_dialog(
        self, dialog: Dialog, method: str, headers: Fields = (), body: bytes = b""
    ) -> Reply:
        """Send a request inside ``dialog`` and return its final response."""
        _, response = await self._send(
            lambda auth: dialog.request(
                method, self.local.via(new_branch()), [*headers, *auth], body
            )
        )
        return Reply.of(response)

    def forget_dialog(self, call_id: str) -> None:
        """Stop answering requests of a dialog we ended."""
        self._dialogs.pop(call_id, None)

    # -- events --------------------------------------------------------------------------

    @overload
    async def next_event(self, kind: None = None, timeout: float | None = None) -> Event: ...

    @overload
    async def next_event(self, kind: type[E], timeout: float | None = None) -> E: ...

    async def next_event(
        self, kind: type[object] | None = None, timeout: float | None = None
    ) -> Event:
        """The oldest event (of ``kind`` when given; others stay queued). ``TimeoutError``
        after ``timeout`` s (default the settings' timeout; ``inf`` waits as long as it
        takes); ``UaError`` when the connection
        is gone and nothing is left."""
        waited = self.settings.timeout if timeout is None else timeout
        if math.isinf(waited):
            return await self._events.take(kind)
        try:
            async with asyncio.timeout(waited):
                return await self._events.take(kind)
        except TimeoutError:
            wanted = kind.__name__ if kind is not None else "event"
            raise TimeoutError(f"no {wanted} within {waited} s") from None

    async def events(self) -> AsyncIterator[Event]:
        """Every event as it comes, until the connection closes."""
        while True:
            try:
                yield await self._events.take(None)
            except UaError:
                return

    # -- internals: sending ------------------------------------------------------------

    def _call_id(self) -> str:
        return f"{secrets.token_hex(8)}@{self.settings.source_ip or 'intrafed-ua'}"

    def _next_cseq(self) -> int:
        self._cseq += 1
        return self._cseq

    def _new_request(
        self,
        method: str,
        uri: Uri,
        headers: Fields,
        call_id: str | None = None,
        body: bytes = b"",
        to: str | None = None,
    ) -> Request:
        return build_request(
            method,
            uri,
            via=self.local.via(new_branch()),
            from_=f"<sip:{self.uri.aor}>;tag={new_tag()}",
            to=to or f"<{uri}>",
            call_id=call_id or self._call_id(),
            cseq=self._next_cseq(),
            headers=[*headers, ("User-Agent", USER_AGENT)],
            body=body,
        )

    async def _register(self, contact: str, expires: int) -> Reply:
        registrar = sip_uri(f"sip:{self.uri.host}")
        aor = f"<sip:{self.uri.aor}>"
        headers = [("Contact", contact), ("Expires", str(expires))]
        _, response = await self._send(
            lambda auth: self._new_request(
                "REGISTER", registrar, [*headers, *auth], self._register_call_id, to=aor
            )
        )
        self.registered = expires > 0
        return Reply.of(response)

    async def _out_of_dialog(
        self, method: str, uri: Uri, headers: Fields, body: bytes = b""
    ) -> Reply:
        call_id = self._call_id()
        _, response = await self._send(
            lambda auth: self._new_request(method, uri, [*headers, *auth], call_id, body)
        )
        return Reply.of(response)

    async def _send(
        self, build: Callable[[Sequence[tuple[str, str]]], Request]
    ) -> tuple[Request, Response]:
        """Send ``build(())``; answer a 401/407 once (again only for a stale nonce); raise
        ``SipError`` for a failure. ``build`` makes a new request (branch, CSeq) each time."""
        request = build(())
        response = await self._transact(request)
        for round_ in range(1, _MAX_AUTH_ROUNDS):
            if response.status not in (401, 407) or self.settings.password is None:
                break
            answer = authorization(
                request,
                response,
                self.uri.user or "",
                self.settings.password,
                self.settings.algorithms,
            )
            if answer is None or (round_ > 1 and not answer.stale):
                break
            request = build([(answer.name, answer.value)])
            response = await self._transact(request)
        if response.status >= 300:
            raise SipError(
                request.method,
                str(request.uri),
                response.status,
                response.reason,
                response.headers.get("warning"),
            )
        return request, response

    async def _transact(self, request: Request) -> Response:
        """Send ``request`` and wait for its final response (the settings' timeout, then a
        local 408 as RFC 3261 §8.1.3.1 says); ACK a non-2xx final to an INVITE."""
        key = client_key(request)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        self._unanswered[key] = request
        try:
            self._write(request)
            response = await asyncio.wait_for(future, self.settings.timeout)
        except TimeoutError:
            raise SipError(
                request.method,
                str(request.uri),
                408,
                "Request Timeout",
                f"no final response within {self.settings.timeout} s",
            ) from None
        finally:
            self._pending.pop(key, None)
            self._unanswered.pop(key, None)
        if request.method == "INVITE" and response.status >= 300:
            self._write(ack_for(request, response))
        return response

    def _write(self, message: Request | Response) -> None:
        if self._reconnecting is not None:
            return  # a request goes out once connected again (``_unanswered``)
        closed_reason = self._events.closed_reason
        if self._writer is None or closed_reason is not None:
            raise UaError(closed_reason or "the user agent is not connected")
        if self._trace is not None:
            self._trace("sent", message)
        self._writer.write(message.to_bytes())

    # -- internals: receiving ------------------------------------------------------------

    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        framer = StreamFramer()
        reason = "the node closed the connection"
        try:
            while data := await reader.read(65536):
                framer.receive_data(data)
                pong = framer.data_to_send()
                if pong and self._writer is not None:
                    self._writer.write(pong)
                while (frame := framer.next_frame()) is not None:
                    self._on_frame(frame)
        except FramingError as exc:
            reason = f"the node's stream cannot be framed: {exc}"
        except (OSError, ssl.SSLError) as exc:
            reason = f"the connection failed: {exc}"
        else:
            if self.settings.reconnect:
                self._reconnecting = asyncio.create_task(self._connect_again())
                return
        self._connection_lost(reason)

    async def _connect_again(self) -> None:
        """The node closed the connection with none of our requests read (it answers
        each it reads before it closes): connect again, register the new contact in place
        of the old one, send the unanswered requests again, and refresh the
        subscriptions so that their NOTIFYs come over the new connection."""
        old_contact, old_writer = self.contact, self._writer
        if old_writer is not None:
            old_writer.close()
        try:
            await self.connect()
        except UaError as exc:
            self._connection_lost(f"the node closed the connection; {exc}")
            return
        finally:
            self._reconnecting = None
        for request in list(self._unanswered.values()):
            self._write(request)
        with contextlib.suppress(UaError, SipError):
            if self.registered:
                await self._register(f"{self.contact}, {old_contact};expires=0", 3600)
            for dialog_user in list(self._dialogs.values()):
                if isinstance(dialog_user, Subscription) and dialog_user.dialog is not None:
                    await dialog_user.refresh()

    def _on_frame(self, frame: bytes) -> None:
        try:
            message = parse_message(frame, stream=True)
        except RemoteSipError as exc:
            logger.warning("unparsable message from the node: %s", exc.reason)
            return
        if self._trace is not None:
            self._trace("received", message)
        if isinstance(message, Response):
            if message.status >= 200:
                future = self._pending.get(client_key(message))
                if future is not None and not future.done():
                    future.set_result(message)
            return
        try:
            self._on_request(message)
        except RemoteSipError as exc:
            self._answer(message, 400, exc.reason, warning=exc.reason)

    def _connection_lost(self, reason: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(UaError(reason))
        self._events.close(reason)

    def _answer(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        headers: Fields = (),
        body: bytes = b"",
        to_tag: str | None = None,
        warning: str | None = None,
    ) -> None:
        fields = list(headers)
        if warning is not None:
            fields.append(("Warning", warning_value(self.uri.aor, warning)))
        tag = to_tag or new_tag()
        response = make_response(request, status, reason, to_tag=tag, headers=fields, body=body)
        with contextlib.suppress(UaError):
            self._write(response)

    def _on_request(self, request: Request) -> None:
        method = request.method
        if method == "ACK":
            return
        dialog_user = self._dialogs.get(request.call_id)
        sender = _aor(request.from_addr.uri)
        if method == "INVITE":
            self._on_invite(request, dialog_user, sender)
        elif method == "NOTIFY":
            self._on_notify(request, dialog_user)
        elif method == "MESSAGE":
            session = dialog_user if isinstance(dialog_user, ImSession) else None
            text = request.body.decode("utf-8", "replace")
            content_type = request.content_type.mime if request.content_type else "text/plain"
            self._answer(request, 200)
            self._events.put(MessageReceived(sender, text, content_type, session))
        elif method in ("INFO", "BYE"):
            if not isinstance(dialog_user, ImSession):
                self._answer(request, 481, warning="no IM session has this Call-ID")
                return
            self._answer(request, 200)
            if method == "BYE":
                dialog_user.ended = True
                self.forget_dialog(request.call_id)
                self._events.put(SessionEnded(sender, dialog_user))
            else:
                self._events.put(TypingReceived(sender, dialog_user))
        elif method in ("OPTIONS", "CANCEL"):
            self._answer(request, 200, headers=[("Allow", ALLOW)])
        else:
            self._answer(request, 405, headers=[("Allow", ALLOW)])

    def _on_invite(
        self, request: Request, dialog_user: ImSession | Subscription | None, sender: str
    ) -> None:
        """Accept an IM session (or a re-INVITE of one): 200 with our SDP; the
        Record-Route is copied into the 2xx (RFC 3261 §12.1.1)."""
        content_type = request.content_type
        if content_type is not None and content_type.mime != "application/sdp":
            self._answer(request, 415, headers=[("Accept", "application/sdp")])
            return
        headers = [
            *(("Record-Route", value) for value in request.headers.get_all("record-route")),
            ("Contact", self.contact),
            ("Allow", ALLOW),
            ("Content-Type", "application/sdp"),
        ]
        sdp = im_session_sdp(self.local.host)
        if isinstance(dialog_user, ImSession):
            self._answer(request, 200, headers=headers, body=sdp)
            return
        tag = new_tag()
        session = ImSession(self, Dialog.as_uas(request, tag, secrets.randbelow(1000)), sender)
        self._dialogs[request.call_id] = session
        self._answer(request, 200, headers=headers, body=sdp, to_tag=tag)
        self._events.put(SessionStarted(sender, session))

    def _on_notify(self, request: Request, dialog_user: ImSession | Subscription | None) -> None:
        if not isinstance(dialog_user, Subscription):
            self._answer(request, 481, warning="no subscription has this Call-ID")
            return
        presence = None
        content_type = request.content_type
        if request.body and content_type is not None and content_type.mime == PIDF_CONTENT_TYPE:
            presence = parse_pidf(request.body)
        if dialog_user.dialog is None:
            # The NOTIFY came before the 2xx: it makes the dialog (RFC 6665 §4.1.2.4).
            dialog_user.dialog = Dialog.as_uas(request, request.to_addr.tag or "")
        elif request.contacts:
            # A NOTIFY is a target refresh request (RFC 6665 §4.1.3).
            dialog_user.dialog.remote_target = request.contacts[0].uri
        state = request.subscription_state
        dialog_user.state = state.token.lower() if state is not None else "active"
        self._answer(request, 200)
        if dialog_user.state == "terminated":
            self.forget_dialog(request.call_id)
        self._events.put(
            PresenceNotified(
                dialog_user.presentity,
                presence.state if presence is not None else None,
                presence.note if presence is not None else None,
                str(state) if state is not None else "active",
                dialog_user,
            )
        )


def _aor(uri: Uri) -> str:
    return uri.aor if isinstance(uri, SipUri) else str(uri)
