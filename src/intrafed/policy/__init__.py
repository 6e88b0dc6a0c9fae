"""Who is trusted (DESIGN §4 "Authorize"), pure and explainable."""

from intrafed.policy.authentication import (
    Challenge,
    Directory,
    StoredCredentials,
    Unanswered,
    Verdict,
    authenticate,
)
from intrafed.policy.dialogs import RouteStamp, in_our_dialog
from intrafed.policy.peers import (
    PartitionHops,
    PeerTrust,
    TrustTable,
    peer_partition_route,
    peer_trust,
    trusted_peer,
)
from intrafed.policy.ratelimit import TokenBuckets, retry_after
from intrafed.sip.decisions import Accepted

__all__ = [
    "Accepted",
    "Challenge",
    "Directory",
    "PartitionHops",
    "PeerTrust",
    "RouteStamp",
    "StoredCredentials",
    "TokenBuckets",
    "TrustTable",
    "Unanswered",
    "Verdict",
    "authenticate",
    "in_our_dialog",
    "peer_partition_route",
    "peer_trust",
    "retry_after",
    "trusted_peer",
]
