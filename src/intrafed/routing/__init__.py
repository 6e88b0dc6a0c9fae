"""The routing decision (DESIGN §4), pure and explainable."""

from intrafed.routing.decide import (
    Local,
    Refuse,
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
    "Refuse",
    "RouteDecision",
    "RoutingTables",
    "ToPeer",
    "decide",
    "matching_routes",
]
