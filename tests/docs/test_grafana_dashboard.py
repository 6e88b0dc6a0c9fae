"""The Grafana dashboard under docs/ queries only metrics a node exports, by their names,
and shows every family of the node."""

from __future__ import annotations

import json
import re
from pathlib import Path

from intrafed.core.meter import Meter
from intrafed.node import Node, NodeSettings
from intrafed.node_metrics import registry_of

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "intrafed.json"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}


def exported_families() -> dict[str, tuple[str, ...]]:
    """Each family a node exports -> the names of its samples."""
    meter = Meter()
    node = Node(
        NodeSettings(name="imp1.example.com", address="127.0.0.1", listeners=()), meter=meter
    )
    return {
        family.name: tuple(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
        for family in registry_of(node, meter).collect()
    }


def test_the_grafana_dashboard_queries_only_exported_metrics_and_shows_each_family() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel.get("targets", ())
        for name in re.findall(r"\b(?:intrafed|process)_[a-z_]+", target["expr"])
    }
    families = exported_families()
    assert queried - {name for names in families.values() for name in names} == set()
    unseen = [
        family
        for family, names in families.items()
        if family.startswith("intrafed_") and not queried & set(names)
    ]
    assert unseen == ["intrafed_node_info"]  # the dashboard's node variable uses it
