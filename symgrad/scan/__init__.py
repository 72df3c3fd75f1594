"""Symbolic loops: scan, map, reduce, foldl, foldr (being written)."""

from symgrad.scan.basic import foldl, foldr, map, reduce, scan, until

__all__ = ["scan", "map", "reduce", "foldl", "foldr", "until"]
