"""The "act" stage: stateful proxy, registrar, presence and IM services (sans-IO)."""
