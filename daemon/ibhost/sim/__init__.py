"""``ibhost sim``: a TWS API simulator with fault injection."""

from .server import Simulator

__all__ = ["Simulator"]
