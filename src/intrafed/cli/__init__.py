"""The ``intrafed`` command."""

from intrafed.cli.main import main

__all__ = ["main"]
