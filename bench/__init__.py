"""The symgrad benchmark suite: ``python -m bench [W1 ... W8] [--quick] [--threads N]``.

This package imports nothing on purpose: ``bench/__main__.py`` must set the
thread variables before numpy or any peer loads. See BENCHMARKS.md.
"""
