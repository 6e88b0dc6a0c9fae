"""The RFC 3261 grammar as regular expressions, with the ABNF quoted above each one.

Every leniency is commented with the RFC 4475 / RFC 5118 case that asks for it. Header
values reach these expressions already unfolded (LWS collapsed to one SP), so SWS here is
just ``[ \\t]*``.
"""

from __future__ import annotations

import re

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~" )
TOKEN_CHARS = r"A-Za-z0-9\-.!%*_+`'~"  # noqa: S105 (a character class, not a password)
TOKEN = rf"[{TOKEN_CHARS}]+"
TOKEN_RE = re.compile(TOKEN)

# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE
# qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII
# quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
# (written as an unrolled loop: runs of qdtext between quoted-pairs, which sre matches
# much faster than an alternation per character)
_QDTEXT = r'[^"\\\x00-\x08\x0a-\x1f\x7f]'
QUOTED_STRING = rf'"{_QDTEXT}*(?:\\[\x00-\x09\x0b\x0c\x0e-\x7f]{_QDTEXT}*)*"'
QUOTED_PAIR_RE = re.compile(r"\\(.)", re.DOTALL)

# unreserved = alphanum / mark
# mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")"
UNRESERVED = r"A-Za-z0-9\-_.!~*'()"
# escaped = "%" HEXDIG HEXDIG
ESCAPED = r"%[0-9A-Fa-f]{2}"
ESCAPED_RE = re.compile(ESCAPED)
BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")

# user = 1*( unreserved / escaped / user-unreserved )
# user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
# (Escapes are matched as plain "%" here and checked by BAD_ESCAPE_RE afterwards: one
# character class is several times faster than an alternation per character.)
USER = rf"[{UNRESERVED}&=+$,;?/%]+"
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
PASSWORD = rf"[{UNRESERVED}&=+$,%]*"

# hostname = *( domainlabel "." ) toplabel [ "." ]
# domainlabel = alphanum / alphanum *( alphanum / "-" ) alphanum
# (label boundaries are not policed: a name that resolves nowhere fails at routing)
HOSTNAME = r"[A-Za-z0-9](?:[A-Za-z0-9\-.]*[A-Za-z0-9.])?"
# IPv6reference = "[" IPv6address "]"
# RFC 5118 §4.10: an element must tolerate the three-colon form "[2001:db8:::192.0.2.1]",
# so the address inside the brackets is only checked for its alphabet and a colon.
IPV6_REFERENCE = r"\[[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\]"
# host = hostname / IPv4address / IPv6reference   (IPv4address is a hostname lexically)
HOST = rf"(?:{IPV6_REFERENCE}|{HOSTNAME})"
HOST_RE = re.compile(HOST)

# paramchar = param-unreserved / unreserved / escaped
# param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$"
PARAMCHAR = rf"[{UNRESERVED}\[\]/:&+$%]"
# uri-parameters = *( ";" uri-parameter ); uri-parameter = pname [ "=" pvalue ]
URI_PARAMETERS = rf"(?:;{PARAMCHAR}+(?:={PARAMCHAR}+)?)*"
URI_PARAMETER_RE = re.compile(rf";({PARAMCHAR}+)(?:=({PARAMCHAR}+))?")
# headers = "?" header *( "&" header ); header = hname "=" hvalue
# hname = 1*( hnv-unreserved / unreserved / escaped ); hvalue = *( ... )
# hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$"
HNVCHAR = rf"[{UNRESERVED}\[\]/?:+$%]"
URI_HEADERS = rf"{HNVCHAR}+={HNVCHAR}*(?:&{HNVCHAR}+={HNVCHAR}*)*"

# SIP-URI  = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
# SIPS-URI = "sips:" [ userinfo ] hostport uri-parameters [ headers ]
# userinfo = ( user / telephone-subscriber ) [ ":" password ] "@"
# hostport = host [ ":" port ]
SIP_URI_RE = re.compile(
    rf"(?P<scheme>[Ss][Ii][Pp][Ss]?):"
    rf"(?:(?P<user>{USER})(?::(?P<password>{PASSWORD}))?@)?"
    rf"(?P<host>{HOST})(?::(?P<port>[0-9]+))?"
    rf"(?P<params>{URI_PARAMETERS})"
    rf"(?:\?(?P<headers>{URI_HEADERS}))?"
)

# RFC 3966: telephone-uri = "tel:" telephone-subscriber
# global-number-digits = "+" *phonedigit DIGIT *phonedigit
# local-number-digits  = *phonedigit-hex (HEXDIG / "*" / "#") *phonedigit-hex
# parameter = ";" pname ["=" pvalue ]; pname = 1*( alphanum / "-" )
# (The separators before the first digit are matched apart from the digits, so that the two
# runs cannot trade characters: backtracking stays linear.)
TEL_URI_RE = re.compile(
    rf"(?P<scheme>[Tt][Ee][Ll]):"
    rf"(?P<number>\+[\-.()]*[0-9][0-9\-.()]*"
    rf"|[\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*)"
    rf"(?P<params>(?:;[A-Za-z0-9\-]+(?:={PARAMCHAR}+)?)*)"
)

# absoluteURI = scheme ":" ( hier-part / opaque-part )
# scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ); uric = reserved / unreserved / escaped
# RFC 4475 §3.3.2/§3.3.3 (unkscm, novelsc): an unknown scheme must parse; routing answers 416.
ABSOLUTE_URI_RE = re.compile(
    rf"(?P<scheme>[A-Za-z][A-Za-z0-9+\-.]*):(?P<rest>[{UNRESERVED};/?:@&=+$,\[\]%]+)"
)

# generic-param = token [ EQUAL gen-value ]; gen-value = token / host / quoted-string
# SEMI = SWS ";" SWS; EQUAL = SWS "=" SWS
# (A parameter owns the whitespace before its ";" only: whitespace that both the end of one
# and the start of the next could take makes a failing match backtrack quadratically.)
GENERIC_PARAM = (
    rf"[ \t]*;[ \t]*({TOKEN})(?:[ \t]*=[ \t]*({TOKEN}|{IPV6_REFERENCE}|{QUOTED_STRING}))?"
)
GENERIC_PARAM_RE = re.compile(GENERIC_PARAM)
# via-received = "received" EQUAL (IPv4address / IPv6address)
# RFC 5118 §4.5: received carries a bare IPv6 address (colons, no brackets).
VIA_PARAM = (
    rf"[ \t]*;[ \t]*({TOKEN})"
    rf"(?:[ \t]*=[ \t]*([{TOKEN_CHARS}:]+|{IPV6_REFERENCE}|{QUOTED_STRING}))?"
)
VIA_PARAM_RE = re.compile(VIA_PARAM)

# via-parm = sent-protocol LWS sent-by *( SEMI via-params )
# sent-protocol = protocol-name SLASH protocol-version SLASH transport
# sent-by = host [ COLON port ]; SLASH = SWS "/" SWS; COLON = SWS ":" SWS
VIA_HEAD = (
    rf"[ \t]*(?P<protocol>{TOKEN})[ \t]*/[ \t]*(?P<version>{TOKEN})[ \t]*/[ \t]*"
    rf"(?P<transport>{TOKEN})[ \t]+(?P<host>{HOST})(?:[ \t]*:[ \t]*(?P<port>[0-9]+))?"
)
VIA_HEAD_RE = re.compile(VIA_HEAD)
VIA_RE = re.compile(rf"{VIA_HEAD}(?P<params>(?:{VIA_PARAM})*)[ \t]*")

# CSeq = "CSeq" HCOLON 1*DIGIT LWS Method
CSEQ_RE = re.compile(rf"(?P<number>[0-9]+)[ \t]+(?P<method>{TOKEN})")

# name-addr = [ display-name ] LAQUOT addr-spec RAQUOT
# display-name = *(token LWS)/ quoted-string
# RFC 4475 §3.1.1.6 (lwsdisp): no LWS between the display name and "<" is accepted.
NAME_ADDR_QUOTED_RE = re.compile(rf"[ \t]*(?P<display>{QUOTED_STRING})[ \t]*<(?P<uri>[^>]*)>")
NAME_ADDR_TOKENS_RE = re.compile(
    rf"[ \t]*(?:(?P<display>{TOKEN}(?:[ \t]+{TOKEN})*)[ \t]*)?<(?P<uri>[^>]*)>"
)

# media-type = m-type SLASH m-subtype *(SEMI m-parameter)
MEDIA_TYPE_RE = re.compile(rf"[ \t]*(?P<type>{TOKEN})[ \t]*/[ \t]*(?P<subtype>{TOKEN})")
# Event = ( "Event" / "o" ) HCOLON event-type *( SEMI event-param )
# Subscription-State = "Subscription-State" HCOLON substate-value *( SEMI subexp-params )
TOKEN_HEAD_RE = re.compile(rf"[ \t]*(?P<token>{TOKEN})")

# Request-Line = Method SP Request-URI SP SIP-Version CRLF
# Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
# SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT   (ABNF literals are case-insensitive)
SIP_VERSION_RE = re.compile(r"[Ss][Ii][Pp]/[0-9]+\.[0-9]+")
# What a start line must look like for a stream to still be in step: anything else on a
# TCP/TLS connection means framing is lost (RFC 4475 dblreq's trailing "C", test.dat).
# (A request line with LWS inside the URI, RFC 4475 lwsruri, still frames: the parser
# answers it with 400 and the connection stays open.)
START_LINE_SHAPE_RE = re.compile(
    rb"(?:[!-~]+[ \t][^\r\n]*[ \t][Ss][Ii][Pp]/[0-9]|[Ss][Ii][Pp]/[0-9]+\.[0-9]+[ \t])"
)

# Control characters that may appear in a header value only as a quoted-pair (intmeth).
CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# LWS = [*WSP CRLF] 1*WSP; a folded line is equivalent to one SP (RFC 3261 §7.3.1).
# (The whitespace before the line break is stripped by the caller: a leading [ \t]* would
# re-read a long run of blanks from each of its positions while scanning.)
FOLD_RE = re.compile(r"\r?\n[ \t]+")
