"""Entry point: the command group. Each command's module is imported only when that command
runs, so ``intrafed --help`` and tab completion stay quick."""

from __future__ import annotations

import click

from intrafed import __version__
from intrafed.cli.common import IntrafedGroup, LazyCommand

COMMANDS = (
    LazyCommand(
        "demo",
        "intrafed.cli.demo_commands:demo_command",
        "Run imp1.example.com (alice) and ocs1.example.com (bob) on loopback, federated as "
        "the seed configures them, and show presence, pager and session IM crossing over.",
    ),
    LazyCommand("sip", "intrafed.cli.sip_commands:sip_group", "Work with SIP messages."),
    LazyCommand(
        "init",
        "intrafed.cli.config_commands:init_command",
        "Make HOME the home of a new ocs or imp node, with no settings yet.",
    ),
    LazyCommand(
        "config",
        "intrafed.cli.config_commands:config_group",
        "Edit the staged configuration (applied by intrafed service reload or restart).",
    ),
    LazyCommand(
        "pki",
        "intrafed.cli.pki_commands:pki_group",
        "Certificate authority, CSRs, certificate stores, validation and selection.",
    ),
    LazyCommand(
        "route", "intrafed.cli.route_commands:route_group", "Routing decisions of the node."
    ),
    LazyCommand(
        "service",
        "intrafed.cli.service_commands:service_group",
        "Start, stop, restart and reload the node in the background; show its status; print "
        "its systemd unit.",
    ),
    LazyCommand(
        "serve",
        "intrafed.cli.serve:serve_command",
        "Run the node in the foreground with the staged configuration (which becomes the "
        "running one).",
    ),
    LazyCommand(
        "check",
        "intrafed.cli.check_commands:check_command",
        "Validate the seed's task list on one node, or across the deployment with --peer.",
    ),
    LazyCommand(
        "probe",
        "intrafed.cli.check_commands:probe_command",
        "Live checks from this node: its listeners, and for each static route name "
        "resolution, TCP, the TLS handshake with our certificate and an OPTIONS round trip.",
    ),
    LazyCommand(
        "show",
        "intrafed.cli.show_commands:show_group",
        "Live state of the running node: registrations, subscriptions, publications, "
        "connections, stats.",
    ),
    LazyCommand(
        "trace",
        "intrafed.cli.trace_commands:trace_group",
        "SIP trace of a running node: start, stop, show.",
    ),
    LazyCommand(
        "user",
        "intrafed.cli.user_commands:user_group",
        "Move users between the partitions (credentials, block lists, directory, watchers).",
    ),
    LazyCommand(
        "admin",
        "intrafed.cli.admin_commands:admin_group",
        "The web console of a node (its tabs, status, check, probe and trace), and its admin "
        "password.",
    ),
    LazyCommand(
        "ua",
        "intrafed.cli.ua_commands:ua_group",
        "A small SIP client: one user over one TCP or TLS connection to its home node.",
    ),
)


@click.group(
    cls=IntrafedGroup,
    lazy_commands=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="intrafed")
def main() -> None:
    """intrafed: partitioned intradomain SIP federation (OCS and IM and Presence sides)."""
