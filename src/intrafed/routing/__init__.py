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

__all__ = [
    "Local",
    "Refuse",
    "RouteDecision",
    "RoutingTables",
    "ToPeer",
    "decide",
    "matching_routes",
]
