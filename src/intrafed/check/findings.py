"""What the checker reports: findings named by stable rule ids, grouped by the seed's
task-list steps, and the ``check --json`` document of DESIGN §6."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from intrafed.pki import Severity


class Step(enum.Enum):
    """The seed's task list (Table 1 and the procedures around it), in order."""

    DOMAINS = "Domain Verification for OCS Servers"
    PORTS = "Enable Port 5060/5061 on OCS Server; IM and Presence Application Listeners"
    IMP_ROUTE = "Configure a static route on IM and Presence Service"
    OCS_ROUTE = "Configure Static Routes on OCS to Point to the IM and Presence Service"
    HOST_AUTHORIZATION = "Add Host Authorization on OCS for IM and Presence Service"
    IMP_TRUST = "TLS peer subjects and incoming ACL on IM and Presence Service"
    OCS_CERTIFICATE = "Configure the certificates on OCS"
    FIPS = "Configure OCS to use FIPS, and import the CA root certificate"
    IMP_CERTIFICATE = "Configure the certificates on IM and Presence Service"
    USERS = "Users and routing mode (Integration Troubleshooting)"
    RESTART = "Restart Services on OCS Front-End Servers"


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule of the checker: its stable id, where in the seed it comes from, what it
    means (for the README's Troubleshooting table) and how bad a breach is."""

    id: str
    step: Step
    meaning: str
    severity: Severity = Severity.ERROR

    def finding(
        self,
        node: str,
        message: str,
        fix: str,
        *,
        severity: Severity | None = None,
        step: Step | None = None,
    ) -> Finding:
        """A breach of this rule on ``node``; ``fix`` names the command to run. A rule
        that applies to both sides may name the step of the side concerned."""
        return Finding(self, severity or self.severity, node, message, fix, step or self.step)


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem on one node: what is wrong and the command that fixes it."""

    rule: Rule
    severity: Severity
    node: str
    """The FQDN of the node the problem (and the fix) concerns."""
    message: str
    fix: str
    """The command to run (the seed step is added by ``fix_text``)."""
    step: Step
    """The seed step the fix belongs to."""

    @property
    def fix_text(self) -> str:
        """The fix and the seed step it comes from."""
        return f"{self.fix} (seed: {self.step.value})"

    def to_json(self) -> dict[str, str]:
        """The finding as DESIGN §6 prints it."""
        return {
            "rule": self.rule.id,
            "severity": self.severity.value,
            "node": self.node,
            "message": self.message,
            "fix": self.fix_text,
        }


@dataclass(frozen=True, slots=True)
class CheckReport:
    """Every finding of one check, in the seed's step order."""

    nodes: tuple[str, ...]
    """The nodes checked (FQDNs)."""
    findings: tuple[Finding, ...]

    @classmethod
    def of(cls, nodes: Iterable[str], findings: Iterable[Finding]) -> CheckReport:
        """A report with the findings ordered by step, then node, errors first."""
        steps = list(Step)
        ordered = sorted(
            dict.fromkeys(findings),
            key=lambda f: (steps.index(f.step), f.node, f.severity is not Severity.ERROR),
        )
        return cls(tuple(nodes), tuple(ordered))

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors

    @property
    def errors(self) -> tuple[Finding, ...]:
        """The findings of severity error."""
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        """The findings of severity warning."""
        return tuple(f for f in self.findings if f.severity is Severity.WARNING)

    def rule_ids(self) -> set[str]:
        """The ids of the rules that fired."""
        return {finding.rule.id for finding in self.findings}

    def to_json(self) -> dict[str, Any]:
        """``{"ok": bool, "findings": [...]}`` (DESIGN §6)."""
        return {"ok": self.ok, "findings": [finding.to_json() for finding in self.findings]}
