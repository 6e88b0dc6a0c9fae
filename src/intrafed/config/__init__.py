"""The node's settings (DESIGN §3): typed model, validation, TOML documents."""
