"""Symbolic loops: scan, map, reduce, foldl, foldr, until.

``symgrad.scan`` (the top-level name) is the :func:`scan` function; it also carries
``map``, ``reduce``, ``foldl``, ``foldr`` and ``until`` as attributes, so both
``symgrad.scan.until(...)`` and ``from symgrad.scan import until`` work.
"""

from symgrad.scan.basic import (
    ScanError,
    ScanGradientError,
    ScanUpdates,
    foldl,
    foldr,
    map,
    reduce,
    scan,
    until,
)
from symgrad.scan.op import Scan, ScanInfo
from symgrad.scan import rewriting  # registers the Scan rewrites

for _name in ("map", "reduce", "foldl", "foldr", "until", "ScanError", "ScanGradientError"):
    setattr(scan, _name, globals()[_name])
del _name

__all__ = ["scan", "map", "reduce", "foldl", "foldr", "until", "Scan", "ScanInfo", "ScanError",
           "ScanGradientError", "ScanUpdates"]
