"""Who is trusted (DESIGN §4 "Authorize"), pure and explainable."""

from intrafed.policy.peers import trusted_peer

__all__ = ["trusted_peer"]
