"""The dialogs a user agent holds: session-mode IM and presence subscriptions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from intrafed.ua.events import Reply, UaError
from intrafed.ua.requests import ISCOMPOSING_CONTENT_TYPE, Dialog, iscomposing_body

if TYPE_CHECKING:
    from intrafed.ua.agent import UserAgent


class ImSession:
    """A session-mode IM dialog (INVITE with ``m=message``): MESSAGE, typing INFO, BYE."""

    def __init__(self, agent: UserAgent, dialog: Dialog, peer: str) -> None:
        self._agent = agent
        self.dialog = dialog
        self.peer = peer
        """The other user's address of record."""
        self.ended = False

    async def message(self, text: str) -> Reply:
        """Send ``text`` inside the session."""
        headers = [("Content-Type", "text/plain;charset=UTF-8")]
        return await self._agent.in_dialog(self.dialog, "MESSAGE", headers, text.encode())

    async def typing(self, active: bool = True) -> Reply:
        """Tell the peer we are typing (INFO with an is-composing document)."""
        headers = [("Content-Type", ISCOMPOSING_CONTENT_TYPE)]
        return await self._agent.in_dialog(self.dialog, "INFO", headers, iscomposing_body(active))

    async def bye(self) -> Reply:
        """End the session."""
        self.ended = True
        self._agent.forget_dialog(self.dialog.call_id)
        return await self._agent.in_dialog(self.dialog, "BYE")


class Subscription:
    """A presence subscription (RFC 6665, event ``presence``) of one presentity."""

    def __init__(self, agent: UserAgent, presentity: str, call_id: str) -> None:
        self._agent = agent
        self.presentity = presentity
        self.call_id = call_id
        self.dialog: Dialog | None = None
        self.state = "pending"
        """The last Subscription-State: pending, active or terminated."""

    async def refresh(self, expires: int = 3600) -> Reply:
        """Extend the subscription (SUBSCRIBE in the dialog); the node NOTIFYs again."""
        return await self._resubscribe(expires)

    async def unsubscribe(self) -> Reply:
        """End the subscription (SUBSCRIBE with Expires: 0 in the dialog)."""
        reply = await self._resubscribe(0)
        self._agent.forget_dialog(self.call_id)
        return reply

    async def _resubscribe(self, expires: int) -> Reply:
        if self.dialog is None:
            raise UaError(f"the subscription to {self.presentity} has no dialog yet")
        headers = [
            ("Event", "presence"),
            ("Expires", str(expires)),
            ("Contact", self._agent.contact),
        ]
        return await self._agent.in_dialog(self.dialog, "SUBSCRIBE", headers)
