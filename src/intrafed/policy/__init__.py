"""Who is trusted (DESIGN §4 "Authorize"), pure and explainable."""

from intrafed.policy.authentication import StoredCredentials, check_register
from intrafed.policy.peers import trusted_peer

__all__ = ["StoredCredentials", "check_register", "trusted_peer"]
