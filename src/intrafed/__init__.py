"""intrafed: partitioned intradomain SIP federation between an OCS and an IM and Presence side."""

__version__ = "0.1.0"
