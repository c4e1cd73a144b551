"""Network lab: a shaped, lossy, interruptible link in a network namespace (see lab.py)."""

from .lab import NetLab, NetLabError, Shape, netlab_available, remove_stale

__all__ = ["NetLab", "NetLabError", "Shape", "netlab_available", "remove_stale"]
