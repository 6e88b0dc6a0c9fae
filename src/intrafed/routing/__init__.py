"""The routing decision (DESIGN §4), pure and explainable."""

from intrafed.routing.decide import (
    Local,
    RouteDecision,
    RoutingTables,
    ToPeer,
    decide,
    matching_routes,
)
from intrafed.routing.health import HopHealth

__all__ = [
    "HopHealth",
    "Local",
    "RouteDecision",
    "RoutingTables",
    "ToPeer",
    "decide",
    "matching_routes",
]
