"""The configuration tabs: OCS General, Routing, Host Authorization, FIPS, Hosts and Users;
IM and Presence Application Listeners, Static Routes, TLS Peer Subjects, Incoming ACL,
Routing Mode, Hosts and Users. Every form stages its change with the
``intrafed.config.edits`` function the CLI command of the same name calls."""

from __future__ import annotations

from pathlib import Path

from intrafed.config import edits
from intrafed.config.model import (
    AclEntry,
    Connection,
    HostAuthorization,
    ImpListeners,
    NodeConfig,
    Role,
    RoutingMode,
    StaticRoute,
    TlsProfile,
)
from intrafed.console.forms import (
    ConfigPage,
    Field,
    Form,
    FormValues,
    Row,
    remove_button,
    remove_form,
    staged,
)
from intrafed.console.security_page import security_page
from intrafed.console.user_pages import hosts_page, users_page

_FQDN = Field("fqdn", "FQDN", hint="a TLS peer: its certificate's name")
_IP = Field("ip", "IP address", hint="the source address")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


# OCS General: connections.


def _connection(values: FormValues) -> Connection:
    return Connection(
        values.required("transport"),
        values.required_integer("port"),
        values.text("ip") or "All",
    )


def _general() -> ConfigPage:
    fields = (
        Field("transport", "Transport", "select", ("TCP", "TLS", "MTLS")),
        Field("port", "Port", "number", default="5061"),
        Field("ip", "IP address", default="All", hint="All, or one of the server's addresses"),
    )

    def rows(home: Path, config: NodeConfig) -> list[Row]:
        return [
            Row(
                (c.transport, c.ip, str(c.port)),
                remove_button({"transport": c.transport, "port": str(c.port), "ip": c.ip}),
            )
            for c in config.connections
        ]

    return ConfigPage(
        "general",
        "General",
        "Connections: where the front end listens (the seed enables 5060 TCP and 5061 MTLS).",
        ("TRANSPORT", "ADDRESS", "PORT"),
        rows,
        (
            Form(
                "add",
                "Add a connection",
                "Add",
                fields,
                staged(
                    lambda c, v: edits.add_connection(c, _connection(v)),
                    "added connection {transport} {ip}:{port}",
                ),
            ),
        ),
        (
            remove_form(
                fields,
                staged(
                    lambda c, v: edits.remove_connection(c, _connection(v)),
                    "removed connection {transport} {ip}:{port}",
                ),
            ),
        ),
    )


# Static routes (both roles).


def _route(values: FormValues, role: Role) -> StaticRoute:
    return StaticRoute(
        values.required("domain"),
        values.required("transport"),
        values.required_integer("port"),
        values.text("ip"),
        values.text("fqdn"),
        values.flag("phone-uri"),
        values.flag("replace-host"),
        (values.integer("priority") or 1) if role is Role.IMP else 1,
    )


def _routing(role: Role) -> ConfigPage:
    fields = [
        Field("domain", "Matching URI", hint="a domain, or *.domain"),
        Field("transport", "Transport", "select", ("TLS", "TCP")),
        Field("fqdn", "Next hop FQDN", hint="TLS routes"),
        Field("ip", "Next hop IP address", hint="TCP routes"),
        Field("port", "Port", "number", default="5061", hint="TLS: the peer's Peer Auth port"),
    ]
    if role is Role.OCS:
        fields += [
            Field("phone-uri", "Phone URI", "checkbox", hint="the seed leaves it unchecked"),
            Field("replace-host", "Replace host", "checkbox", hint="the seed leaves it unchecked"),
        ]
        headers: tuple[str, ...] = (
            "MATCHING URI",
            "TRANSPORT",
            "NEXT HOP",
            "PORT",
            "PHONE URI",
            "REPLACE HOST",
        )
    else:
        fields.append(
            Field("priority", "Priority", "number", default="1", hint="1 primary, 2+ backups")
        )
        headers = ("DESTINATION", "TRANSPORT", "NEXT HOP", "PORT", "PRIORITY")

    def rows(home: Path, config: NodeConfig) -> list[Row]:
        routes = config.routes if role is Role.OCS else sorted(config.routes, key=lambda r: r.key)
        return [
            Row(
                (r.domain, r.transport, r.next_hop, str(r.port))
                + (
                    (_yes(r.phone_uri), _yes(r.replace_host))
                    if role is Role.OCS
                    else (str(r.priority),)
                ),
                remove_button({"domain": r.domain, "priority": str(r.priority)}),
            )
            for r in routes
        ]

    def remove(config: NodeConfig, values: FormValues) -> NodeConfig:
        priority = values.integer("priority") or 1
        return edits.remove_route(config, values.required("domain"), priority)

    return ConfigPage(
        "routing",
        "Routing" if role is Role.OCS else "Static Routes",
        "Static routes: requests for users homed on the other side go to its next hop. "
        "Important: a TLS route names its next hop by FQDN.",
        headers,
        rows,
        (
            Form(
                "add",
                "Add a static route",
                "Add",
                tuple(fields),
                staged(
                    lambda c, v: edits.add_route(c, _route(v, role)),
                    "added static route {domain} → {transport} {fqdn}{ip}:{port}",
                ),
            ),
        ),
        (
            remove_form(
                (Field("domain", "Matching URI"), Field("priority", "Priority", "number")),
                staged(remove, "removed static route {domain}"),
            ),
        ),
    )


# OCS Host Authorization.


def _host_authorization() -> ConfigPage:
    def add(config: NodeConfig, values: FormValues) -> NodeConfig:
        entry = HostAuthorization(
            values.text("fqdn"),
            values.text("ip"),
            values.flag("outbound-only"),
            values.flag("throttle-as-server"),
            values.flag("treat-as-authenticated"),
        )
        return edits.add_host_authorization(config, entry)

    def rows(home: Path, config: NodeConfig) -> list[Row]:
        return [
            Row(
                (
                    h.host,
                    _yes(h.outbound_only),
                    _yes(h.throttle_as_server),
                    _yes(h.treat_as_authenticated),
                ),
                remove_button({"host": h.host}),
            )
            for h in config.host_authorizations
        ]

    return ConfigPage(
        "hostauth",
        "Host Authorization",
        "Peers whose requests are trusted as a server's. A TLS peer needs two entries: "
        "its FQDN and its IP address.",
        ("HOST", "OUTBOUND ONLY", "THROTTLE AS SERVER", "TREAT AS AUTHENTICATED"),
        rows,
        (
            Form(
                "add",
                "Authorize a host",
                "Add",
                (
                    _FQDN,
                    _IP,
                    Field("outbound-only", "Outbound only", "checkbox"),
                    Field("throttle-as-server", "Throttle as server", "checkbox", default="on"),
                    Field(
                        "treat-as-authenticated", "Treat as authenticated", "checkbox", default="on"
                    ),
                ),
                staged(add, "authorized host {fqdn}{ip}"),
            ),
        ),
        (
            remove_form(
                (Field("host", "Host", settings=("hostauth",)),),
                staged(
                    lambda c, v: edits.remove_host_authorization(c, v.required("host")),
                    "removed host authorization {host}",
                ),
            ),
        ),
    )


# OCS FIPS policy.


def _fips() -> ConfigPage:
    def rows(home: Path, config: NodeConfig) -> list[Row]:
        return [
            Row(("FIPS 140-2 algorithms", "on" if config.fips else "off")),
            Row(("TLS profile", config.tls_profile.value)),
        ]

    def apply(config: NodeConfig, values: FormValues) -> NodeConfig:
        profile = TlsProfile(values.required("tls-profile"))
        return edits.set_tls_profile(edits.set_fips(config, values.flag("fips")), profile)

    return ConfigPage(
        "fips",
        "FIPS",
        "The seed's 'Configure OCS to use FIPS': FIPS 140-2 algorithms only, TLS 1.2 and up.",
        ("SETTING", "VALUE"),
        rows,
        (
            Form(
                "set",
                "FIPS policy",
                "Save",
                (
                    Field("fips", "Use FIPS 140-2 algorithms", "checkbox", default="on"),
                    Field(
                        "tls-profile",
                        "TLS profile",
                        "select",
                        tuple(profile.value for profile in TlsProfile),
                    ),
                ),
                staged(apply, "FIPS policy saved"),
                current=lambda config: {
                    **({"fips": "on"} if config.fips else {}),
                    "tls-profile": config.tls_profile.value,
                },
            ),
        ),
    )


# IM and Presence: Application Listeners, TLS Peer Subjects, Incoming ACL, Routing Mode.


def _listener_ports(config: NodeConfig) -> dict[str, str]:
    listeners = config.listeners or ImpListeners()
    return {
        "tcp": str(listeners.tcp),
        "peer-auth": str(listeners.peer_auth),
        "server-auth": str(listeners.server_auth),
    }


def _listeners() -> ConfigPage:
    def rows(home: Path, config: NodeConfig) -> list[Row]:
        if config.listeners is None:
            return []
        listeners = config.listeners
        return [
            Row(("TCP", str(listeners.tcp))),
            Row(("Peer Auth (MTLS)", str(listeners.peer_auth))),
            Row(("Server Auth (TLS)", str(listeners.server_auth))),
        ]

    return ConfigPage(
        "listeners",
        "Application Listeners",
        "Peer Auth is the port OCS's TLS static route names; Server Auth must differ from it.",
        ("LISTENER", "PORT"),
        rows,
        (
            Form(
                "set",
                "Move listeners",
                "Save",
                (
                    Field("tcp", "TCP", "number"),
                    Field("peer-auth", "Peer Auth", "number"),
                    Field("server-auth", "Server Auth", "number"),
                ),
                staged(
                    lambda c, v: edits.set_listeners(
                        c, v.integer("tcp"), v.integer("peer-auth"), v.integer("server-auth")
                    ),
                    "listeners saved",
                ),
                current=_listener_ports,
            ),
        ),
    )


def _peer_subjects() -> ConfigPage:
    name = Field("name", "Peer subject (FQDN)", settings=("peer-subject",))
    return ConfigPage(
        "peer-subjects",
        "TLS Peer Subjects",
        "The certificate names of the OCS servers (or pool) allowed over MTLS.",
        ("SUBJECT",),
        lambda home, config: [
            Row((subject,), remove_button({"name": subject})) for subject in config.peer_subjects
        ],
        (
            Form(
                "add",
                "Add a peer subject",
                "Add",
                (name,),
                staged(
                    lambda c, v: edits.add_peer_subject(c, v.required("name", "peer-subject")),
                    "added peer subject {name}",
                ),
            ),
        ),
        (
            remove_form(
                (name,),
                staged(
                    lambda c, v: edits.remove_peer_subject(c, v.required("name", "peer-subject")),
                    "removed peer subject {name}",
                ),
            ),
        ),
    )


def _acl() -> ConfigPage:
    def add(config: NodeConfig, values: FormValues) -> NodeConfig:
        return edits.add_acl(config, AclEntry(values.text("fqdn"), values.text("ip")))

    return ConfigPage(
        "acl",
        "Incoming ACL",
        "Hosts whose TCP requests are trusted without a digest challenge.",
        ("HOST",),
        lambda home, config: [Row((e.host,), remove_button({"host": e.host})) for e in config.acl],
        (Form("add", "Add an ACL entry", "Add", (_FQDN, _IP), staged(add, "added {fqdn}{ip}")),),
        (
            remove_form(
                (Field("host", "Host", settings=("acl",)),),
                staged(
                    lambda c, v: edits.remove_acl(c, v.required("host")), "removed ACL entry {host}"
                ),
            ),
        ),
    )


def _routing_mode() -> ConfigPage:
    return ConfigPage(
        "routing-mode",
        "Routing Mode",
        "Basic forwards every same-domain user not homed here; advanced only known ones.",
        ("SETTING", "VALUE"),
        lambda home, config: [Row(("Routing mode", config.routing_mode.value))],
        (
            Form(
                "set",
                "Routing mode",
                "Save",
                (Field("mode", "Mode", "select", tuple(m.value for m in RoutingMode)),),
                staged(
                    lambda c, v: edits.set_routing_mode(c, RoutingMode(v.required("mode"))),
                    "routing mode: {mode}",
                ),
                current=lambda config: {"mode": config.routing_mode.value},
            ),
        ),
    )


def config_pages(role: Role) -> tuple[ConfigPage, ...]:
    """The tabs of a node of ``role``, in the order the products show them."""
    if role is Role.OCS:
        return (
            _general(),
            _routing(role),
            _host_authorization(),
            security_page(),
            _fips(),
            hosts_page(),
            users_page(),
        )
    return (
        _listeners(),
        _routing(role),
        _peer_subjects(),
        _acl(),
        _routing_mode(),
        security_page(),
        hosts_page(),
        users_page(),
    )
