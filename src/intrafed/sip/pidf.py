"""PIDF (RFC 3863) presence documents with RPID (RFC 4480) activities: the six presence
states users see (DESIGN §4), built and parsed through one mapping table.

Bodies are parsed with ``defusedxml`` with DTDs forbidden, so entity expansion ("billion
laughs") and external entities are refused before anything is expanded. Anything a peer
sends that is not a usable PIDF document raises ``RemoteSipError`` (400) naming the fault.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden
from defusedxml.ElementTree import fromstring

from intrafed.sip.errors import RemoteSipError

PIDF_CONTENT_TYPE = "application/pidf+xml"
# A presence document with one tuple, a person and a note is well under 2 KiB; the SIP
# body limit (256 KiB) would let one PUBLISH pin far more memory per presentity.
MAX_PIDF_BYTES = 64 * 1024

PIDF_NS = "urn:ietf:params:xml:ns:pidf"
DATA_MODEL_NS = "urn:ietf:params:xml:ns:pidf:data-model"
RPID_NS = "urn:ietf:params:xml:ns:pidf:rpid"
_PRESENCE = f"{{{PIDF_NS}}}presence"
_TUPLE = f"{{{PIDF_NS}}}tuple"
_STATUS = f"{{{PIDF_NS}}}status"
_BASIC = f"{{{PIDF_NS}}}basic"
_NOTE = f"{{{PIDF_NS}}}note"
_ACTIVITIES = f"{{{RPID_NS}}}activities"
_OTHER = f"{{{RPID_NS}}}other"

# XML 1.0 §2.2 Char: what a note may contain; anything else is replaced when building.
_NOT_XML_CHAR_RE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class PresenceState(enum.Enum):
    """The presence states users see; the value is the name tools and the CLI use."""

    AVAILABLE = "available"
    AWAY = "away"
    BE_RIGHT_BACK = "be-right-back"
    BUSY = "busy"
    DO_NOT_DISTURB = "do-not-disturb"
    OFFLINE = "offline"

    @classmethod
    def _missing_(cls, value: object) -> PresenceState | None:
        # "Appear Offline" is a client's choice that watchers see as Offline (DESIGN §4).
        return cls.OFFLINE if value == "appear-offline" else None

    @property
    def label(self) -> str:
        """The name users see: "Be Right Back", "Do Not Disturb"…"""
        return self.value.replace("-", " ").title()


@dataclass(frozen=True, slots=True)
class Encoding:
    """How one state is carried: PIDF basic status and RPID activities.

    ``other`` is the text of an ``<rpid:other>`` activity that refines ``activity``: RFC
    4480 has no Be Right Back or Do Not Disturb, so those travel as away / busy plus an
    ``other`` naming them, and a watcher that only knows RFC 4480 still shows Away / Busy.
    """

    basic: str
    activity: str | None = None
    other: str | None = None


# The one mapping table of DESIGN §4, shared by both roles. Parsing tries the rows in this
# order and takes the first whose basic status matches and whose activities are all
# present, so the refined rows come before the plain ones they refine.
ENCODINGS: dict[PresenceState, Encoding] = {
    PresenceState.OFFLINE: Encoding("closed"),
    PresenceState.BE_RIGHT_BACK: Encoding("open", "away", "be-right-back"),
    PresenceState.DO_NOT_DISTURB: Encoding("open", "busy", "do-not-disturb"),
    PresenceState.AWAY: Encoding("open", "away"),
    PresenceState.BUSY: Encoding("open", "busy"),
    PresenceState.AVAILABLE: Encoding("open"),
}

# Other RFC 4480 activities that clients publish, read as the state a user would expect.
ACTIVITY_EQUIVALENTS = {
    "appointment": "busy",
    "meeting": "busy",
    "on-the-phone": "busy",
    "presentation": "busy",
    "breakfast": "away",
    "dinner": "away",
    "holiday": "away",
    "lunch": "away",
    "meal": "away",
    "permanent-absence": "away",
    "sleeping": "away",
    "vacation": "away",
}


@dataclass(frozen=True, slots=True)
class Presence:
    """What a PIDF document says: whose presence, which state, and the note if any."""

    entity: str
    state: PresenceState
    note: str | None = None


def _escape(text: str, quote: bool = False) -> str:
    text = _NOT_XML_CHAR_RE.sub("\ufffd", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # A literal CR would be read back as LF (XML 1.0 §2.11); a character reference is not.
    text = text.replace("\r", "&#13;")
    if quote:
        text = text.replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")
    return text


def build_pidf(entity: str, state: PresenceState, note: str | None = None) -> bytes:
    """The PIDF document for ``entity`` in ``state``: one tuple with the basic status, a
    data-model person with the RPID activities, and ``note`` (characters XML cannot carry
    become U+FFFD)."""
    encoding = ENCODINGS[state]
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<presence xmlns="{PIDF_NS}" xmlns:dm="{DATA_MODEL_NS}" xmlns:rpid="{RPID_NS}"'
        f' entity="{_escape(entity, quote=True)}">\n'
        f'<tuple id="t1"><status><basic>{encoding.basic}</basic></status></tuple>\n'
    ]
    if note:
        parts.append(f"<note>{_escape(note)}</note>\n")
    if encoding.activity is not None:
        activities = f"<rpid:{encoding.activity}/>"
        if encoding.other is not None:
            activities += f"<rpid:other>{encoding.other}</rpid:other>"
        parts.append(f'<dm:person id="p1"><rpid:activities>{activities}</rpid:activities>')
        parts.append("</dm:person>\n")
    parts.append("</presence>\n")
    return "".join(parts).encode()


def _parse_xml(body: bytes) -> Element:
    if len(body) > MAX_PIDF_BYTES:
        raise RemoteSipError(f"PIDF body of {len(body)} bytes is larger than {MAX_PIDF_BYTES}")
    try:
        return fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DTDForbidden:
        raise RemoteSipError("PIDF body declares a DTD, which is refused") from None
    except EntitiesForbidden:
        raise RemoteSipError("PIDF body declares entities, which are refused") from None
    except DefusedXmlException as exc:
        raise RemoteSipError(f"PIDF body refused: {exc}") from None
    except ParseError as exc:
        raise RemoteSipError(f"PIDF body is not well-formed XML: {exc}") from None
    except (ValueError, LookupError) as exc:
        # expat's encoding handling can raise these for declarations it cannot honour.
        raise RemoteSipError(f"PIDF body cannot be decoded: {exc}") from None


def _activities(root: Element) -> tuple[set[str], set[str]]:
    """Every RPID activity anywhere in the document (RFC 4480 puts them in the person
    element; older clients put them in a tuple's status), and the texts of ``other``."""
    activities: set[str] = set()
    others: set[str] = set()
    for element in root.iter(_ACTIVITIES):
        for child in element:
            namespace, _, name = child.tag.rpartition("}")
            if namespace != "{" + RPID_NS:
                continue
            if child.tag == _OTHER:
                others.add((child.text or "").strip().lower())
            else:
                activities.add(ACTIVITY_EQUIVALENTS.get(name, name))
    return activities, others


def _state(basic: str, activities: set[str], others: set[str]) -> PresenceState:
    for state, encoding in ENCODINGS.items():
        if (
            encoding.basic == basic
            and (encoding.activity is None or encoding.activity in activities)
            and (encoding.other is None or encoding.other in others)
        ):
            return state
    raise AssertionError(f"ENCODINGS has no row for basic {basic}")


def parse_pidf(body: bytes) -> Presence:
    """The presence a PIDF document states. Any tuple open means open; RPID activities
    then refine Available into the other states (see ``ENCODINGS``)."""
    root = _parse_xml(body)
    if root.tag != _PRESENCE:
        raise RemoteSipError(f"PIDF root element is {root.tag!r}, not presence in {PIDF_NS}")
    # RFC 3863 §4.1.2: "The <presence> element MUST have an 'entity' attribute."
    entity = root.get("entity")
    if not entity:
        raise RemoteSipError("PIDF presence element has no entity attribute")
    tuples = root.findall(_TUPLE)
    if not tuples:
        raise RemoteSipError("PIDF document has no tuple")
    basics: list[str] = []
    for element in tuples:
        # RFC 3863 §4.1.4: "The <status> element ... MUST appear exactly once" per tuple.
        status = element.find(_STATUS)
        if status is None:
            raise RemoteSipError(f"PIDF tuple {element.get('id')!r} has no status")
        basic_element = status.find(_BASIC)
        if basic_element is not None:
            value = (basic_element.text or "").strip()
            if value not in ("open", "closed"):
                raise RemoteSipError(f"PIDF basic status {value[:32]!r} is not open or closed")
            basics.append(value)
    if not basics:
        raise RemoteSipError("PIDF document has no tuple with a basic status")
    basic = "open" if "open" in basics else "closed"
    notes = root.findall(_NOTE) or [note for t in tuples for note in t.findall(_NOTE)]
    note = notes[0].text if notes and notes[0].text else None
    return Presence(entity, _state(basic, *_activities(root)), note)
