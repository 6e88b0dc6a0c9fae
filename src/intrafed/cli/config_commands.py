"""``intrafed init`` and ``intrafed config …``: the node's settings, in the seed's words."""

from __future__ import annotations

import click


@click.group("config")
def config_group() -> None:
    """Edit the staged configuration (applied by intrafed service restart)."""
