"""``python -m intrafed``."""

from intrafed.cli import main

main()
