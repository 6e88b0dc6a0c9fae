"""The checker's rules: the seed's task list and Cisco's Integration Troubleshooting
checklist as pure functions of the loaded nodes and the time.

Rules about one node run on every node given; rules that compare the two sides run when
nodes of both roles are given (``intrafed check --home A --peer B``).
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from intrafed.check.facts import NodeFacts
from intrafed.check.findings import CheckReport, Finding
from intrafed.check.rules.catalogue import RULES
from intrafed.check.rules.certificates import check_certificate
from intrafed.check.rules.listeners import check_domains, check_listener_clash, check_listeners
from intrafed.check.rules.routes import check_routes
from intrafed.check.rules.trust import check_host_authorization, check_imp_trust, check_tls_policy
from intrafed.check.rules.users import check_restart, check_users

__all__ = ["RULES", "check_nodes"]


def check_nodes(nodes: Sequence[NodeFacts], now: datetime.datetime | None = None) -> CheckReport:
    """Every rule over ``nodes`` (one node, or both sides of a deployment)."""
    moment = now if now is not None else datetime.datetime.now(datetime.UTC)
    findings: list[Finding] = []
    for node in nodes:
        others = [other for other in nodes if other.config.role is not node.config.role]
        for rule in _NODE_RULES:
            findings.extend(rule(node, others))
        findings.extend(check_certificate(node, others, moment))
    return CheckReport.of((node.name for node in nodes), findings)


_NODE_RULES = (
    check_domains,
    check_listeners,
    check_listener_clash,
    check_routes,
    check_host_authorization,
    check_imp_trust,
    check_tls_policy,
    check_users,
    check_restart,
)
