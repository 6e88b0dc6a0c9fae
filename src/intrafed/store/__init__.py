"""Persistence: the node's configuration (staged and running), SQLite by default."""

from intrafed.store.sqlite import ConfigStore, StagedEdit, StoreError, home_containing

__all__ = ["ConfigStore", "StagedEdit", "StoreError", "home_containing"]
