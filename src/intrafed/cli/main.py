"""Entry point: the command group."""

from __future__ import annotations

import click

from intrafed import __version__
from intrafed.cli.check_commands import check_command, probe_command
from intrafed.cli.common import IntrafedGroup
from intrafed.cli.config_commands import config_group, init_command
from intrafed.cli.demo_commands import demo_command
from intrafed.cli.pki_commands import pki_group
from intrafed.cli.route_commands import route_group
from intrafed.cli.service_commands import serve_command, service_group
from intrafed.cli.sip_commands import sip_group
from intrafed.cli.ua_commands import ua_group


@click.group(cls=IntrafedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="intrafed")
def main() -> None:
    """intrafed: partitioned intradomain SIP federation (OCS and IM and Presence sides)."""


main.add_command(demo_command)
main.add_command(sip_group)
main.add_command(init_command)
main.add_command(config_group)
main.add_command(pki_group)
main.add_command(route_group)
main.add_command(service_group)
main.add_command(serve_command)
main.add_command(check_command)
main.add_command(probe_command)
main.add_command(ua_group)
