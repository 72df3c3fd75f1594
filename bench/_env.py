"""Thread settings, applied before numpy or any peer is imported.

Only the standard library may be imported here: ``bench/__main__.py`` calls
:func:`set_thread_env` first thing, so that OpenBLAS, MKL, OpenMP, numba and XLA
all see the same thread count when they load.
"""

import os

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def threads_from_argv(argv) -> int:
    """The value of ``--threads N`` / ``--threads=N`` in argv (default 1)."""
    for k, arg in enumerate(argv):
        if arg == "--threads" and k + 1 < len(argv):
            return max(1, int(argv[k + 1]))
        if arg.startswith("--threads="):
            return max(1, int(arg.split("=", 1)[1]))
    return 1


def xla_flags(n: int) -> str:
    # (XLA reads a value that does not start with "--" as a file of flags: always lead with
    # a flag of its own)
    if n == 1:
        return "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    return f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={n}"


def set_thread_env(argv) -> int:
    """Set every thread variable to the ``--threads`` count; returns the count."""
    n = threads_from_argv(argv)
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    # Keep any unrelated XLA flags the user set, but replace the thread ones.
    kept = [f for f in os.environ.get("XLA_FLAGS", "").split()
            if not f.lstrip("-").startswith(("xla_cpu_multi_thread_eigen", "intra_op_parallelism"))]
    os.environ["XLA_FLAGS"] = " ".join(kept + [xla_flags(n)])
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ["BENCH_THREADS"] = str(n)
    return n


def thread_env() -> dict:
    """The thread-related variables as the benchmark set them (for the report)."""
    return {k: os.environ.get(k) for k in THREAD_VARS + ("XLA_FLAGS", "JAX_PLATFORMS")}
