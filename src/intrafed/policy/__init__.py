"""Who is trusted (DESIGN §4 "Authorize"), pure and explainable."""

from intrafed.policy.authentication import Accepted, Directory, StoredCredentials, authenticate
from intrafed.policy.peers import PeerTrust, peer_partition_route, peer_trust, trusted_peer
from intrafed.policy.ratelimit import RateClass, RateLimits, TokenBuckets, retry_after

__all__ = [
    "Accepted",
    "Directory",
    "PeerTrust",
    "RateClass",
    "RateLimits",
    "StoredCredentials",
    "TokenBuckets",
    "authenticate",
    "peer_partition_route",
    "peer_trust",
    "retry_after",
    "trusted_peer",
]
