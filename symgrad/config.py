"""Global settings: ``config.floatX``, the default mode, and debug flags.

Use ``config.floatX = "float32"`` or, for a block, ``with config.change_flags(floatX="float32"):``.
"""

from __future__ import annotations

import contextlib
import os

_VALID = {
    "floatX": ("float64", "float32"),
}


class Config:
    def __init__(self):
        object.__setattr__(self, "_values", {
            "floatX": os.environ.get("SYMGRAD_FLOATX", "float64"),
            "mode": os.environ.get("SYMGRAD_MODE", "FAST_RUN"),
            "check_rewrites": False,   # check types after every rewrite, naming the culprit
            "fast_math": False,        # allow rewrites that are wrong on NaN/inf (x - x -> 0)
            "compute_test_value": "off",
            # keep freed memory for the next large array (glibc; see symgrad/_malloc.py)
            "tune_malloc": os.environ.get("SYMGRAD_TUNE_MALLOC", "1") not in ("0", "false"),
        })

    def __getattr__(self, name):
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        raise AttributeError(f"config has no flag {name!r}; flags: {sorted(values)}")

    def __setattr__(self, name, value):
        if name not in self._values:
            raise AttributeError(f"config has no flag {name!r}; flags: {sorted(self._values)}")
        if name in _VALID and value not in _VALID[name]:
            raise ValueError(f"config.{name} must be one of {_VALID[name]}, got {value!r}")
        self._values[name] = value

    @contextlib.contextmanager
    def change_flags(self, **flags):
        old = {k: getattr(self, k) for k in flags}
        try:
            for k, v in flags.items():
                setattr(self, k, v)
            yield self
        finally:
            for k, v in old.items():
                self._values[k] = v

    def __repr__(self):
        return f"Config({self._values})"


config = Config()
change_flags = config.change_flags
