"""The catalogue of the checker's rules: id, step of the seed, meaning, severity.

A rule is an error exactly when the mistake breaks federation (a MESSAGE or presence across
the partition fails), a warning when federation still works. Where the effect depends on
the rest of the configuration (another host authorization entry still trusting the peer, a
certificate problem while the partitions speak TCP only) the finding is a warning then;
the severity here is the one of the mistake that breaks federation.
"""

from __future__ import annotations

from intrafed.check.findings import Rule, Step
from intrafed.pki import Severity

ERROR, WARNING, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO

RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule("domain.none", Step.DOMAINS, "the node serves no SIP domain"),
        Rule(
            "domain.mismatch",
            Step.DOMAINS,
            "a domain served on one side is not served on the other (a sub-domain is not the "
            "same domain)",
        ),
        Rule("listener.ocs-none", Step.PORTS, "the OCS server has no TCP or MTLS connection"),
        Rule(
            "listener.ocs-mtls",
            Step.PORTS,
            "OCS uses TLS towards IM and Presence but has no MTLS connection (Configure Mutual "
            "TLS Authentication on OCS)",
        ),
        Rule(
            "listener.imp-server-auth",
            Step.PORTS,
            "the IM and Presence Server Auth listener is on 5061, where OCS expects Peer Auth",
        ),
        Rule(
            "listener.clash",
            Step.PORTS,
            "an OCS connection and an IM and Presence listener on the same machine take the "
            "same port (one on All, or both on one address): the node started second cannot "
            "listen",
        ),
        Rule("route.missing", Step.OCS_ROUTE, "no static route for a domain this side serves"),
        Rule("route.phone-uri", Step.OCS_ROUTE, "the route matches phone URIs only"),
        Rule("route.replace-host", Step.OCS_ROUTE, "the route rewrites the Request-URI host"),
        Rule(
            "route.unresolved",
            Step.OCS_ROUTE,
            "a TLS route's FQDN resolves neither in the hosts table nor in DNS",
        ),
        Rule(
            "route.address",
            Step.OCS_ROUTE,
            "the route's next hop is none of the other side's nodes",
        ),
        Rule(
            "route.principal",
            Step.OCS_ROUTE,
            "the TLS route's FQDN is not a name on the peer's certificate (\"wrong principal\")",
        ),
        Rule(
            "route.port",
            Step.OCS_ROUTE,
            "the route's port and transport do not match a listener of the peer (TLS: OCS MTLS "
            "connection or IM and Presence Peer Auth; TCP: its TCP listener)",
        ),
        Rule(
            "hostauth.fqdn",
            Step.HOST_AUTHORIZATION,
            "a TLS route's next hop has no host authorization entry by FQDN (a warning while "
            "its IP entry trusts it)",
        ),
        Rule(
            "hostauth.ip",
            Step.HOST_AUTHORIZATION,
            "a route's next hop has no host authorization entry by IP (a warning while its "
            "FQDN entry trusts it over MTLS)",
        ),
        Rule(
            "hostauth.peer-node",
            Step.HOST_AUTHORIZATION,
            "an IM and Presence node of the other side has no host authorization (IP, and FQDN "
            "for TLS)",
        ),
        Rule(
            "hostauth.outbound-only",
            Step.HOST_AUTHORIZATION,
            "an entry is Outbound Only: the peer's requests get no trust from it (403 unless "
            "another entry trusts it)",
        ),
        Rule(
            "hostauth.treat-as-authenticated",
            Step.HOST_AUTHORIZATION,
            "an entry is not Treat as Authenticated: the peer's requests it matches first are "
            "challenged (407)",
        ),
        Rule(
            "hostauth.throttle-as-server",
            Step.HOST_AUTHORIZATION,
            "an entry is not Throttle as Server",
            WARNING,
        ),
        Rule(
            "trust.peer-subject",
            Step.IMP_TRUST,
            "IM and Presence would not trust the OCS server's MTLS connections (no TLS peer "
            "subject or ACL entry for its certificate names)",
        ),
        Rule(
            "trust.acl",
            Step.IMP_TRUST,
            "IM and Presence would not trust the OCS server's TCP connections (no incoming ACL "
            "entry for its IP)",
        ),
        Rule(
            "cert.none",
            Step.OCS_CERTIFICATE,
            "no certificate is selected, so the node has no TLS (a warning when the partitions "
            "speak TCP only)",
        ),
        Rule("cert.private-key", Step.OCS_CERTIFICATE, "the selected certificate has no key"),
        Rule("cert.expired", Step.OCS_CERTIFICATE, "the selected certificate is not valid now"),
        Rule(
            "cert.expiring",
            Step.OCS_CERTIFICATE,
            "the selected certificate ends within 30 days",
            WARNING,
        ),
        Rule(
            "cert.eku",
            Step.OCS_CERTIFICATE,
            "the certificate lacks Server or Client Authentication EKU",
        ),
        Rule(
            "cert.name",
            Step.OCS_CERTIFICATE,
            "the subject CN is not the SE server FQDN, the EE pool FQDN, or the IM and Presence "
            "node FQDN",
        ),
        Rule("cert.key", Step.OCS_CERTIFICATE, "the key is too weak or of a refused type"),
        Rule(
            "cert.chain",
            Step.OCS_CERTIFICATE,
            "the certificate does not chain to a root of the node's own trusted store",
        ),
        Rule(
            "cert.peer-untrusted",
            Step.FIPS,
            "the other side's trusted store has no root for this side's certificate "
            '("certificate root not trusted")',
        ),
        Rule(
            "tls.fips",
            Step.FIPS,
            "TLS is used with the FIPS policy off: TLS 1.3 and suites outside FIPS 140 are "
            "offered (a FIPS peer still agrees on TLS 1.2)",
            WARNING,
        ),
        Rule(
            "tls.legacy-fips",
            Step.FIPS,
            "the legacy-tls1 profile with the FIPS policy on: the node builds no TLS context "
            "and starts without TLS (a warning when the partitions speak TCP only)",
        ),
        Rule("tls.legacy-profile", Step.FIPS, "the legacy-tls1 profile admits TLS 1.0", WARNING),
        Rule(
            "tls.fips-tls12",
            Step.FIPS,
            "with the FIPS policy on, TLS is capped at 1.2 (Python 3.11 cannot restrict the "
            "TLS 1.3 suites)",
            INFO,
        ),
        Rule(
            "user.both-sides",
            Step.USERS,
            "a user is provisioned on both sides (a disabled OCS user still counts as OCS's)",
        ),
        Rule(
            "user.neither-side",
            Step.USERS,
            "a user of the shared domain is named by a block list but provisioned on neither "
            "side (a move that stopped half-way; the other users federate)",
            WARNING,
        ),
        Rule(
            "routing.advanced",
            Step.USERS,
            "advanced routing mode with an empty directory of the other side's users",
        ),
        Rule(
            "routing.directory-missing",
            Step.USERS,
            "the advanced routing mode directory misses users the OCS side has: requests for "
            "them get 404",
        ),
        Rule(
            "routing.directory-stale",
            Step.USERS,
            "the advanced routing mode directory lists users the OCS side does not have",
            WARNING,
        ),
        Rule(
            "restart.pending",
            Step.RESTART,
            "the node runs, but not the staged settings that were checked",
        ),
    )
}


def rule(rule_id: str) -> Rule:
    """The rule with the id ``rule_id``."""
    return RULES[rule_id]
