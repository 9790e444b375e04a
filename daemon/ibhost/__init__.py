"""ibhost: one healthy Interactive Brokers API connection on the host, served to containers."""

__version__ = "0.1.0"
