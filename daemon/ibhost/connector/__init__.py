"""The connector: the one process that owns the IB connection."""
