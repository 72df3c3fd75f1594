"""The benchmark harness: systems, timing, interleaving, checks, reports.

A workload module (``bench/w1.py`` ... ``bench/w8.py``) declares ``NAME``,
``TITLE`` and ``cases(cfg)``, a list of :class:`Case` (or :class:`ColdCase`).
A case lists its :class:`System` s; each system is two small callables:

* ``build()`` builds the graph (or whatever the system needs before compiling),
* ``compile(built)`` returns ``call``, a zero-argument callable that runs one
  evaluation on the case's inputs and returns its outputs (JAX calls block).

For every system the harness measures build, compile and the first call (the
lazy compilers, PyTensor's numba backend, JAX and numba, compile there), checks
the first call's outputs against symgrad's, then times steady-state calls with
the systems interleaved, and (where the case asks) the peak memory of one call
in a fresh subprocess. Nothing here imports a peer: availability is checked with
``importlib.util.find_spec`` so an absent peer is reported as "absent".
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8")
FAMILY_MODULE = {"symgrad": "symgrad", "numpy": "numpy", "scipy": "scipy", "pytensor": "pytensor",
                 "jax": "jax", "numba": "numba",
                 # symgrad compiled by its other backends: absent when that backend's package is
                 "symgrad-jax": "jax", "symgrad-jax-device": "jax", "symgrad-numba": "numba"}
# symgrad's backends as families: the default one (the reference of every ratio) and the others
SYMGRAD_MODES = {"symgrad": None, "symgrad-jax": "JAX", "symgrad-jax-device": "JAX",
                 "symgrad-numba": "NUMBA"}
# families whose functions are run through symgrad.backends.jax.device_function: JAX arrays in
# and out, as JAX's own rows (jax_call waits for the result the same way)
DEVICE_FAMILIES = frozenset({"symgrad-jax-device"})
QUICK_COLD_NUMBA = "in --quick (cold numba compile)"
perf = time.perf_counter


# -- declarations ---------------------------------------------------------------------------------

@dataclass
class Config:
    """Run settings; plain data so that a child process can be handed the same ones."""

    quick: bool = False
    threads: int = 1
    repeat: int | None = None       # most steady-state samples per system
    budget: float | None = None     # seconds of steady-state samples per system (adaptive)
    memory: bool | None = None      # peak memory where a case asks (default: full runs only)
    cold: bool = True               # run the cold-start subprocesses
    systems: list[str] | None = None  # only systems whose name starts with one of these;
                                      # "-prefix" leaves out the systems that start with prefix

    @property
    def min_reps(self) -> int:
        return 3 if self.quick else 5

    @property
    def max_reps(self) -> int:
        return self.repeat or (20 if self.quick else 200)

    @property
    def sample_budget(self) -> float:
        return self.budget or (0.02 if self.quick else 0.2)

    @property
    def max_time(self) -> float:
        """Hard cap on one system's steady-state phase in one case."""
        return max(self.sample_budget * 2, 0.3 if self.quick else 3.0)

    def wants(self, system_name: str) -> bool:
        if not self.systems:
            return True
        keep = [p for p in self.systems if p and not p.startswith("-")]
        drop = [p[1:] for p in self.systems if p.startswith("-") and len(p) > 1]
        return (not keep or any(system_name.startswith(p) for p in keep)) and \
            not any(system_name.startswith(p) for p in drop)


@dataclass
class System:
    name: str
    family: str                                   # symgrad | pytensor | jax | numpy | numba | scipy
    build: Callable[[], Any]
    compile: Callable[[Any], Callable[[], Any]]
    isolate: bool = False                         # run it in a subprocess with a timeout
    env: dict | None = None                       # extra environment of that subprocess;
    note: str = ""                                # "{tmp}" there is a fresh empty directory
    skip: str = ""                                # not run: status "skipped", this the reason
    memory: bool = True                           # measure its peak memory where the case does
    fresh_graphs: int | None = None               # overrides the case's (cold rows: 1)


@dataclass
class Case:
    label: str
    systems: list[System]
    fresh_graphs: int = 1          # build+compile+first call this many times, medians quoted
    memory: bool = False           # measure the peak memory of one call
    failures_are_results: bool = False  # a symgrad failure is a finding ("FAILED"), not a gap
    timeout: float = 120.0         # seconds for build+compile+first call (subprocess or alarm)
    escalates: str = ""            # a size series: a system that timed out on an earlier case
                                   # of the same series is not run on this (larger) one
    rtol: float | None = None
    atol: float | None = None
    note: str = ""


@dataclass
class ColdCase:
    """A fresh interpreter that imports, builds, compiles and calls once; `scripts` print JSON."""

    label: str
    scripts: dict[str, tuple[str, str]]   # system -> (family, python source)
    expected: Any
    runs: int = 3
    timeout: float = 120.0
    note: str = ""


class BenchTimeout(Exception):
    pass


class BenchSkip(Exception):
    """A system that is deliberately not run (status "skipped", the message says why)."""


# -- the libraries, spelled the same way for symgrad and PyTensor ----------------------------------

def available(family: str) -> bool:
    mod = FAMILY_MODULE.get(family, family)
    try:
        return importlib.util.find_spec(mod) is not None
    except (ImportError, ValueError):
        return False


def tensor_lib(family: str) -> SimpleNamespace:
    """symgrad or PyTensor behind one namespace, used exactly as the PyTensor tutorial does.

    The families "symgrad-jax" and "symgrad-numba" are symgrad whose ``function`` compiles
    with ``mode="JAX"`` / ``mode="NUMBA"``."""
    if family in SYMGRAD_MODES:
        import symgrad
        import symgrad.tensor as T

        def scan(*args, **kwargs):
            fn = getattr(symgrad, "scan", None)
            if fn is not None and not callable(fn):  # the package, not the function
                fn = getattr(fn, "scan", None)
            if fn is None:
                raise NotImplementedError("symgrad.scan does not exist yet")
            return fn(*args, **kwargs)

        return SimpleNamespace(name=family, lib=symgrad, T=T, grad=symgrad.grad,
                               function=backend_function(SYMGRAD_MODES[family],
                                                         device=family in DEVICE_FAMILIES),
                               shared=symgrad.shared,
                               gradient=symgrad.gradient, Rop=symgrad.gradient.Rop, scan=scan)
    import warnings

    import pytensor
    import pytensor.tensor as T

    # e.g. "Rop is deprecated, use pushforward instead": the tutorial's spelling is the point
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"pytensor(\.|$)")
    return SimpleNamespace(name="pytensor", lib=pytensor, T=T, grad=pytensor.grad,
                           function=pytensor.function, shared=pytensor.shared,
                           gradient=pytensor.gradient, Rop=pytensor.gradient.Rop,
                           scan=pytensor.scan)


_NUMBA_FUNCTIONS: list = []   # symgrad functions compiled with mode="NUMBA" by the current setup


def backend_function(mode: str | None, device: bool = False):
    """``symgrad.function`` compiling with `mode` (None: symgrad's default mode). With
    `device`, the compiled function runs through ``device_function`` (JAX arrays out, the
    call waiting for them like JAX's own rows)."""
    import symgrad

    if mode is None:
        return symgrad.function

    def function(*args, **kwargs):
        kwargs.setdefault("mode", mode)
        fn = symgrad.function(*args, **kwargs)
        if mode == "NUMBA":
            _NUMBA_FUNCTIONS.append(fn)
        if device:
            import jax

            from symgrad.backends.jax import device_function

            run = device_function(fn)
            return lambda *a: jax.block_until_ready(run(*a))
        return fn

    return function


def _numba_dispatchers(fn) -> list:
    """The jitted segments of a symgrad function compiled by the numba backend."""
    program = getattr(getattr(fn, "executable", None), "program", None) or ()
    return [s.fn for s in program if hasattr(getattr(s, "fn", None), "stats")]


def numba_cache_predicted(fns) -> bool:
    """Whether calling these functions will not compile: every segment is compiled in this
    process already or has an index in numba's disk cache (``$SYMGRAD_CACHE_DIR/numba``)."""
    for fn in fns:
        for d in _numba_dispatchers(fn):
            if d.signatures:
                continue
            index = getattr(getattr(getattr(d, "_cache", None), "_cache_file", None),
                            "_index_path", None)
            if not index or not os.path.exists(index):
                return False
    return True


def numba_cache_state(fns) -> str:
    """What the first call found, from numba's own counters: warm, cold, partly warm, or
    in-process (compiled by an earlier function of this process: no disk access)."""
    hits = misses = segments = 0
    for fn in fns:
        for d in _numba_dispatchers(fn):
            segments += 1
            hits += sum(d.stats.cache_hits.values())
            misses += sum(d.stats.cache_misses.values())
    if not segments:
        return "no numba code"
    if hits and not misses:
        return "warm"
    if misses and not hits:
        return "cold"
    if hits and misses:
        return f"partly warm, {hits} of {hits + misses} segments"
    return "in-process"


def scan_outputs(result):
    """scan's outputs and updates, for both ``(outputs, updates)`` and bare outputs."""
    if isinstance(result, tuple) and len(result) == 2 and (
            result[1] is None or isinstance(result[1], dict) or hasattr(result[1], "items")):
        return result[0], result[1]
    return result, None


def symgrad_backend_systems(make: Callable[[str], System], cfg: Config,
                            cold: bool = True) -> list[System]:
    """The rows of symgrad's JAX and numba backends in a case (issue 7).

    ``make(family)`` is the workload's own system factory, called with "symgrad-jax" and
    "symgrad-numba" (``tensor_lib`` gives those families a ``function`` compiling with
    ``mode="JAX"`` / ``mode="NUMBA"``). The numba row runs in-process on numba's disk cache
    as it is (its status says whether it was warm). With `cold`, a "symgrad-numba-cold" row
    measures the compile from an empty cache: a subprocess whose ``SYMGRAD_CACHE_DIR`` is a
    fresh directory; it is skipped in --quick (a cold compile takes seconds per graph)."""
    out = [make("symgrad-jax"), make("symgrad-jax-device"), make("symgrad-numba")]
    if cold:
        warm = out[-1]
        out.append(dataclasses.replace(
            warm, name=warm.name.replace("symgrad-numba", "symgrad-numba-cold", 1),
            isolate=True, env={"SYMGRAD_CACHE_DIR": "{tmp}"}, memory=False,
            skip=QUICK_COLD_NUMBA if cfg.quick else "",
            note="numba's disk cache empty (fresh SYMGRAD_CACHE_DIR, subprocess)"))
    return out


# PyTensor keeps compiled code on disk (its C/numba caches); a "-cold" row starts them empty.
EMPTY_PYTENSOR_CACHE = {"PYTENSOR_FLAGS": "base_compiledir={tmp}/pytensor",
                        "NUMBA_CACHE_DIR": "{tmp}/numba"}
QUICK_COLD_PYTENSOR = "in --quick (PyTensor from an empty cache takes seconds)"


def pytensor_cold(system: System, cfg: Config) -> System:
    """The same PyTensor system compiled from an empty cache, as on a user's first run.

    A subprocess whose ``base_compiledir`` and ``NUMBA_CACHE_DIR`` are fresh directories
    builds, compiles and calls one graph; PyTensor's default (numba) backend then compiles
    every kernel. This is the time the issues' compile bars compare with."""
    return dataclasses.replace(
        system, name=system.name.replace("pytensor", "pytensor-cold", 1), isolate=True,
        env=EMPTY_PYTENSOR_CACHE, memory=False, fresh_graphs=1,
        skip=QUICK_COLD_PYTENSOR if cfg.quick else "",
        note="PyTensor's caches empty (fresh base_compiledir and NUMBA_CACHE_DIR, subprocess)")


def jax_lib():
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    return jax, jnp


def jax_call(fn, *args):
    """A zero-argument call of a jitted function that waits for the result."""
    import jax

    return lambda: jax.block_until_ready(fn(*args))


# -- running one system ---------------------------------------------------------------------------

@contextlib.contextmanager
def alarm(seconds: float | None):
    """Raise BenchTimeout in the main thread after `seconds` (Python code only)."""
    usable = seconds and hasattr(signal, "setitimer") and \
        __import__("threading").current_thread() is __import__("threading").main_thread()
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise BenchTimeout(f">{seconds:.0f} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def short(exc: BaseException, limit: int = 110) -> str:
    text = " ".join(str(exc).split())
    msg = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def empty_result(system: System, **kw) -> dict:
    res = {"system": system.name, "family": system.family, "status": "ok", "message": "",
           "isolated": system.isolate, "build_s": None, "compile_s": None, "first_s": None,
           "fresh_graphs": 0, "median_s": None, "q1_s": None, "q3_s": None, "min_s": None,
           "max_s": None, "reps": 0, "inner": 0, "samples_s": [], "peak_mem_bytes": None,
           "mem_method": None, "check": None, "check_detail": "", "note": system.note,
           "cache": None}
    res.update(kw)
    return res


def absent_result(system: System) -> dict:
    module = FAMILY_MODULE.get(system.family, system.family)
    return empty_result(system, status="absent", message=f"{module} not installed")


def failure(res: dict, system: System, case: Case, exc: BaseException, stage: str) -> dict:
    if isinstance(exc, BenchTimeout):
        res["status"], res["message"] = "timeout", str(exc)
    elif isinstance(exc, BenchSkip):
        res["status"], res["message"] = "skipped", str(exc)
        return res
    elif system.family in SYMGRAD_MODES and not case.failures_are_results:
        res["status"], res["message"] = "unsupported", short(exc)
    else:
        res["status"], res["message"] = "failed", f"{stage}: {short(exc)}"
    res["traceback"] = traceback.format_exc(limit=-6)
    return res


def as_arrays(out) -> list[np.ndarray]:
    items = out if isinstance(out, list | tuple) else [out]
    return [np.array(o, copy=True) for o in items]


PREIMPORT = {"symgrad": ("symgrad", "symgrad.tensor"), "pytensor": ("pytensor", "pytensor.tensor"),
             "numba": ("numba",), "scipy": ("scipy.optimize",), "numpy": ("numpy",),
             "symgrad-jax": ("symgrad", "symgrad.tensor", "symgrad.backends.jax"),
             "symgrad-jax-device": ("symgrad", "symgrad.tensor", "symgrad.backends.jax"),
             "symgrad-numba": ("symgrad", "symgrad.tensor", "symgrad.backends.numba")}


def preimport(family: str) -> None:
    """Import a system's package outside the timed region (so build time is not import time)."""
    if family == "jax":
        jax_lib()
        return
    for mod in PREIMPORT.get(family, ()):
        importlib.import_module(mod)


def setup_system(case: Case, system: System, cfg: Config | None = None
                 ) -> tuple[dict, list | None, Callable | None]:
    """Build, compile and call once (``case.fresh_graphs`` times); medians are reported.

    For symgrad's numba backend it records whether numba's disk cache was warm (the first
    graph's), and in --quick skips a system whose first call would compile cold."""
    res = empty_result(system)
    numba = system.family == "symgrad-numba"
    fresh = system.fresh_graphs or case.fresh_graphs
    try:
        preimport(system.family)
    except Exception as exc:  # noqa: BLE001
        return failure(res, system, case, exc, "import"), None, None
    builds, compiles, firsts = [], [], []
    out = call = None
    stage = "build"
    try:
        with alarm(case.timeout * max(1, fresh)):
            for k in range(fresh):
                stage = "build"
                _NUMBA_FUNCTIONS.clear()
                t0 = perf()
                built = system.build()
                t1 = perf()
                stage = "compile"
                call = system.compile(built)
                t2 = perf()
                stage = "first call"
                fns = list(_NUMBA_FUNCTIONS) if numba and k == 0 else []
                if fns and cfg is not None and cfg.quick and not numba_cache_predicted(fns):
                    raise BenchSkip(QUICK_COLD_NUMBA)
                t2b = perf()
                out = call()
                t3 = perf()
                if fns:
                    res["cache"] = numba_cache_state(fns) + (
                        f" (first of {fresh} graphs)" if fresh > 1 else "")
                builds.append(t1 - t0)
                compiles.append(t2 - t1)
                firsts.append(t3 - t2b)
            outputs = as_arrays(out)
    except BaseException as exc:  # noqa: BLE001 - every failure is a result here
        if isinstance(exc, KeyboardInterrupt):
            raise
        return failure(res, system, case, exc, stage), None, None
    res.update(build_s=float(np.median(builds)), compile_s=float(np.median(compiles)),
               first_s=float(np.median(firsts)), fresh_graphs=len(builds))
    if len(builds) > 1:
        res.update(build_all_s=builds, compile_all_s=compiles, first_all_s=firsts)
    return res, outputs, call


WARM_LIMIT = 0.05  # a warm-up call precedes each sample of calls faster than this


@dataclass
class Plan:
    inner: int       # calls per sample
    reps: int        # samples still to take
    warm: bool       # an untimed call before each sample
    done: list       # samples already taken (the calibration call, when it is the only one)


def plan_samples(call: Callable, cfg: Config) -> Plan:
    """Calls per sample so that a sample lasts >= ~1 ms, and how many samples fit the budget.

    One warm call calibrates (the first call may have compiled); when that call alone
    exceeds the time cap it is the only sample."""
    t0 = perf()
    call()
    est = perf() - t0
    if est > cfg.max_time:
        return Plan(1, 0, False, [est])
    inner = 1
    if est < 1e-3:
        inner = min(1000, max(1, math.ceil(1e-3 / max(est, 1e-7))))
        t0 = perf()
        for _ in range(inner):
            call()
        est = (perf() - t0) / inner
    warm = est < WARM_LIMIT
    per_sample = est * (inner + warm)
    reps = min(cfg.max_reps, max(cfg.min_reps, math.ceil(cfg.sample_budget / per_sample)))
    if reps * per_sample > cfg.max_time:
        reps = max(1, math.floor(cfg.max_time / per_sample))
    return Plan(inner, reps, warm, [])


def take_sample(call: Callable, plan: Plan) -> float:
    """Seconds per call over `plan.inner` back-to-back calls, after one untimed warm-up call
    where the plan says so (a system resumed after another one's turn then does not pay for
    waking its threads and caches)."""
    if plan.warm:
        call()
    gc_was = gc.isenabled()
    gc.disable()
    try:
        t0 = perf()
        for _ in range(plan.inner):
            call()
        return (perf() - t0) / plan.inner
    finally:
        if gc_was:
            gc.enable()


def summarize(res: dict, samples: list[float], inner: int) -> None:
    a = np.asarray(samples)
    res.update(samples_s=[float(s) for s in samples], reps=len(samples), inner=inner,
               median_s=float(np.median(a)), q1_s=float(np.percentile(a, 25)),
               q3_s=float(np.percentile(a, 75)), min_s=float(a.min()), max_s=float(a.max()))


def steady_interleaved(entries: list[tuple[dict, Callable]], cfg: Config) -> None:
    """Time steady-state calls, rotating the order of the systems every round."""
    plans = []
    for res, call in entries:
        try:
            plans.append(plan_samples(call, cfg))
        except Exception as exc:  # noqa: BLE001
            res["status"], res["message"] = "failed", f"steady call: {short(exc)}"
            plans.append(Plan(0, 0, False, []))
    n = len(entries)
    for r in range(max((p.reps for p in plans), default=0)):
        for k in range(n):
            j = (k + r) % n
            (res, call), plan = entries[j], plans[j]
            if r >= plan.reps or res["status"] != "ok":
                continue
            try:
                plan.done.append(take_sample(call, plan))
            except Exception as exc:  # noqa: BLE001
                res["status"], res["message"] = "failed", f"steady call: {short(exc)}"
    for (res, _), plan in zip(entries, plans):
        if res["status"] == "ok" and plan.done:
            summarize(res, plan.done, plan.inner)


# -- checks ---------------------------------------------------------------------------------------

def tolerances(ref: list[np.ndarray], case: Case) -> tuple[float, float]:
    low = any(np.asarray(r).dtype in (np.float32, np.float16) for r in ref)
    rtol = case.rtol if case.rtol is not None else (1e-3 if low else 1e-6)
    atol = case.atol if case.atol is not None else (1e-5 if low else 1e-9)
    return rtol, atol


def compare(ref: list[np.ndarray], out: list[np.ndarray], rtol: float, atol: float):
    """(ok, detail): np.allclose output by output; atol is scaled by the reference's size."""
    if len(ref) != len(out):
        return False, f"{len(out)} outputs, reference has {len(ref)}"
    worst = 0.0
    for k, (r, o) in enumerate(zip(ref, out)):
        r, o = np.asarray(r, dtype=float), np.asarray(o, dtype=float)
        if r.shape != o.shape:
            if r.size == o.size == 1:
                r, o = r.reshape(()), o.reshape(())
            else:
                return False, f"output {k}: shape {o.shape}, reference {r.shape}"
        scale = max(1.0, float(np.nanmax(np.abs(r)))) if r.size else 1.0
        err = float(np.nanmax(np.abs(o - r))) / scale if r.size else 0.0
        if not np.allclose(o, r, rtol=rtol, atol=atol * scale, equal_nan=True):
            return False, f"output {k}: max abs err {err * scale:.3g} (scale {scale:.3g})"
        worst = max(worst, err)
    return True, f"max err {worst:.1e}"


def check_all(case: Case, results: list[dict], outputs: dict[str, list]) -> None:
    ok = [r for r in results if r["status"] == "ok" and outputs.get(r["system"]) is not None]
    ref = next((r for r in ok if r["family"] == "symgrad"), ok[0] if ok else None)
    if ref is None:
        return
    ref_out = outputs[ref["system"]]
    rtol, atol = tolerances(ref_out, case)
    ref["check"], ref["check_detail"] = "ref", ""
    for r in ok:
        if r is ref:
            continue
        good, detail = compare(ref_out, outputs[r["system"]], rtol, atol)
        r["check"] = "ok" if good else "MISMATCH"
        r["check_detail"] = f"{detail} vs {ref['system']}"


# -- subprocesses ----------------------------------------------------------------------------------

def child_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(extra or {})
    return env


def read_proc_status() -> dict:
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS", "VmHWM")):
                key, val = line.split(":")
                out[key] = int(val.split()[0]) * 1024
    return out


def measure_memory(call: Callable) -> tuple[int | None, str]:
    """Peak extra resident memory of one call: VmHWM after resetting it, less VmRSS before."""
    try:
        gc.collect()
        before = read_proc_status()["VmRSS"]
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        call()
        return read_proc_status()["VmHWM"] - before, "rss-hwm"
    except OSError:
        import resource

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        call()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return after - before, "ru_maxrss-delta"


def run_isolated(workload: str, case: Case, system: System, cfg: Config, mode: str) -> tuple:
    """Run one system of one case in a fresh ``python -m bench._child`` with a timeout.

    mode "run": setup + steady-state (not interleaved); mode "memory": setup + one call's
    peak memory (glibc told to mmap large blocks, so freed memory leaves the RSS).
    """
    res = empty_result(system, isolated=True)
    # build+compile+first call, plus interpreter start and imports, plus the steady phase
    fresh = system.fresh_graphs or case.fresh_graphs
    timeout = case.timeout * max(1, fresh) + 30 + (2 * cfg.max_time if mode == "run" else 0)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        spec = {"workload": workload, "case": case.label, "system": system.name,
                "config": asdict(cfg), "mode": mode, "out": str(Path(tmp) / "result")}
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        extra = {k: v.replace("{tmp}", tmp) for k, v in (system.env or {}).items()}
        if mode == "memory":
            extra |= {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "131072"}
        try:
            proc = subprocess.run([sys.executable, "-m", "bench._child", str(spec_path)],
                                  cwd=ROOT, env=child_env(extra), capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            res["status"], res["message"] = "timeout", f">{timeout:.0f} s, subprocess killed"
            return res, None
        result_path = Path(spec["out"] + ".json")
        if proc.returncode != 0 or not result_path.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            status = "unsupported" if system.family in SYMGRAD_MODES and \
                not case.failures_are_results else "failed"
            res["status"] = status
            res["message"] = f"subprocess exit {proc.returncode}: {tail[0][:90]}"
            return res, None
        child = json.loads(result_path.read_text())
        outputs = None
        npz = Path(spec["out"] + ".npz")
        if npz.exists():
            with np.load(npz) as data:
                outputs = [data[f"arr_{k}"] for k in range(len(data.files))]
        child["isolated"] = True
        return child, outputs


def child_main(spec_path: str) -> int:
    """Entry of ``python -m bench._child SPEC``: one system of one case, results to files."""
    spec = json.loads(Path(spec_path).read_text())
    cfg = Config(**spec["config"])
    case = find_case(spec["workload"], spec["case"], cfg)
    system = next(s for s in case.systems if s.name == spec["system"])
    res, outputs, call = setup_system(case, system, cfg)
    res["isolated"] = True
    if res["status"] == "ok":
        if spec["mode"] == "memory":
            res["peak_mem_bytes"], res["mem_method"] = measure_memory(call)
        else:
            try:
                plan = plan_samples(call, cfg)
                plan.done += [take_sample(call, plan) for _ in range(plan.reps)]
                summarize(res, plan.done, plan.inner)
            except Exception as exc:  # noqa: BLE001
                res["status"], res["message"] = "failed", f"steady call: {short(exc)}"
            np.savez(spec["out"] + ".npz", *outputs)
    Path(spec["out"] + ".json").write_text(json.dumps(res))
    return 0


def find_case(workload: str, label: str, cfg: Config) -> Case:
    module = importlib.import_module(f"bench.{workload.lower()}")
    return next(c for c in module.cases(cfg) if c.label == label)


# -- running cases ----------------------------------------------------------------------------------

def run_case(workload: str, case: Case, cfg: Config, log=print, timed_out=None) -> dict:
    """Run one case; `timed_out` maps (series, system) to the case it timed out on."""
    results, outputs, live = [], {}, []
    systems = [s for s in case.systems if cfg.wants(s.name)]
    timed_out = {} if timed_out is None else timed_out
    for system in systems:
        if not available(system.family):
            results.append(absent_result(system))
            continue
        if system.skip:
            results.append(empty_result(system, status="skipped", message=system.skip))
            log(f"  {case.label:<24} {system.name:<26} skipped {system.skip}")
            continue
        earlier = timed_out.get((case.escalates, system.name)) if case.escalates else None
        if earlier:
            results.append(empty_result(system, status="timeout",
                                        message=f"skipped: timed out on {earlier}"))
            continue
        if system.isolate:
            res, out = run_isolated(workload, case, system, cfg, "run")
        else:
            res, out, call = setup_system(case, system, cfg)
            if res["status"] == "ok":
                live.append((res, call))
        results.append(res)
        if out is not None:
            outputs[system.name] = out
        log(f"  {case.label:<24} {system.name:<26} {describe_setup(res)}")
    check_all(case, results, outputs)
    steady_interleaved(live, cfg)
    live.clear()
    if case.memory and (cfg.memory if cfg.memory is not None else not cfg.quick):
        for res, system in zip(results, systems):
            if res["status"] == "ok" and system.memory:
                mem, _ = run_isolated(workload, case, system, cfg, "memory")
                res["peak_mem_bytes"], res["mem_method"] = mem.get("peak_mem_bytes"), \
                    mem.get("mem_method")
    add_ratios(results)
    if case.escalates:
        for r in results:
            if r["status"] == "timeout":
                timed_out.setdefault((case.escalates, r["system"]), case.label)
    return {"label": case.label, "kind": "timed", "note": case.note,
            "fresh_graphs": case.fresh_graphs, "results": results}


def describe_setup(res: dict) -> str:
    if res["status"] == "skipped":
        return f"skipped {res['message']}"
    if res["status"] != "ok":
        return f"{res['status']}: {res['message']}"
    cache = f" (numba cache {res['cache']})" if res.get("cache") else ""
    return f"build+compile {fmt_time(res['build_s'] + res['compile_s'])}, " \
           f"first call {fmt_time(res['first_s'])}{cache}"


def add_ratios(results: list[dict]) -> None:
    """symgrad / system, for the steady median and the time to the first result."""
    ref = next((r for r in results if r["family"] == "symgrad" and r["status"] == "ok"), None)
    for r in results:
        r["ratio_median"] = r["ratio_first_result"] = None
        if ref is None or r["status"] != "ok":
            continue
        if ref["median_s"] and r["median_s"]:
            r["ratio_median"] = ref["median_s"] / r["median_s"]
        first_ref = to_first_result(ref)
        first = to_first_result(r)
        if first_ref and first:
            r["ratio_first_result"] = first_ref / first


def to_first_result(r: dict) -> float | None:
    if r.get("total_s") is not None:      # cold start: the process wall time
        return r["total_s"]
    parts = [r.get("build_s"), r.get("compile_s"), r.get("first_s")]
    return None if any(p is None for p in parts) else sum(parts)


def run_cold(case: ColdCase, cfg: Config, log=print) -> dict:
    # Every process reads compiled bytecode, as after an installation (pip writes it; the
    # peers' site-packages have it): bytecode goes to a fresh prefix, written by one
    # untimed warm-up process per system, whatever PYTHONDONTWRITEBYTECODE says here.
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as prefix:
        env = child_env({"PYTHONPYCACHEPREFIX": prefix})
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return _run_cold(case, cfg, env, log)


def _run_cold(case: ColdCase, cfg: Config, env: dict, log=print) -> dict:
    results = []
    runs = 1 if cfg.quick else case.runs
    for name, (family, script) in case.scripts.items():
        system = System(name, family, build=lambda: None, compile=lambda b: None, isolate=True)
        if not cfg.wants(name):
            continue
        if not available(family):
            results.append(absent_result(system))
            continue
        res = empty_result(system)
        walls, inner = [], []
        for k in range(runs + 1):
            t0 = perf()
            try:
                proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                                      capture_output=True, text=True, timeout=case.timeout)
            except subprocess.TimeoutExpired:
                res["status"], res["message"] = "timeout", f">{case.timeout:.0f} s"
                break
            wall = perf() - t0
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH ")), None)
            if proc.returncode != 0 or line is None:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                res["status"] = "unsupported" if family == "symgrad" else "failed"
                res["message"] = tail[0][:100]
                break
            if k == 0:
                continue  # the warm-up process: it wrote the bytecode
            walls.append(wall)
            inner.append(json.loads(line[6:]))
        if res["status"] == "ok":
            med = {k: float(np.median([d[k] for d in inner])) for k in
                   ("import_s", "build_s", "compile_s", "first_s")}
            res.update(med, total_s=float(np.median(walls)), walls_s=walls, reps=len(walls),
                       min_s=min(walls), max_s=max(walls))
            value = inner[-1]["value"]
            good = np.allclose(value, case.expected)
            res["check"] = "ok" if good else "MISMATCH"
            res["check_detail"] = f"value {value}, expected {case.expected}"
        log(f"  {case.label:<24} {name:<26} "
            + (f"process wall {fmt_time(res['total_s'])}" if res["status"] == "ok"
               else f"{res['status']}: {res['message']}"))
        results.append(res)
    ref = next((r for r in results if r["family"] == "symgrad" and r["status"] == "ok"), None)
    for r in results:
        r["ratio_median"] = None
        r["ratio_first_result"] = (ref["total_s"] / r["total_s"]
                                   if ref and r["status"] == "ok" else None)
    return {"label": case.label, "kind": "cold", "note": case.note, "results": results}


def run_workload(name: str, cfg: Config, log=print) -> dict:
    module = importlib.import_module(f"bench.{name.lower()}")
    t0 = perf()
    log(f"{name}: {module.TITLE}")
    cases_out, timed_out = [], {}
    for case in module.cases(cfg):
        if isinstance(case, ColdCase):
            if cfg.cold:
                cases_out.append(run_cold(case, cfg, log))
        else:
            cases_out.append(run_case(name, case, cfg, log, timed_out))
        gc.collect()
    return {"name": name, "title": module.TITLE, "about": getattr(module, "ABOUT", ""),
            "summary": getattr(module, "SUMMARY", "median"),
            "cases": cases_out, "wall_s": perf() - t0}


# -- environment ----------------------------------------------------------------------------------

def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def numba_cache_dir() -> str:
    """symgrad's numba cache directory, as ``symgrad.backends.numba.cache_dir`` computes it
    (without importing numba)."""
    base = os.environ.get("SYMGRAD_CACHE_DIR")
    if base:
        return str(Path(base) / "numba")
    return str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
               / "symgrad" / "numba")


def environment(cfg: Config) -> dict:
    from bench._env import thread_env

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) * 1024
    versions = {d: _version(d) for d in ("numpy", "scipy", "pytensor", "jax", "jaxlib", "numba",
                                         "llvmlite")}
    try:
        import symgrad

        versions["symgrad"] = symgrad.__version__
        symgrad_mode = str(symgrad.config.mode)
    except Exception as exc:  # noqa: BLE001
        symgrad_mode = f"unavailable ({short(exc)})"
    blas = {}
    with contextlib.suppress(Exception):
        deps = np.show_config(mode="dicts")["Build Dependencies"]
        blas = {"blas": f"{deps['blas'].get('name')} {deps['blas'].get('version')}",
                "blas_config": deps["blas"].get("openblas configuration"),
                "lapack": f"{deps['lapack'].get('name')} {deps['lapack'].get('version')}"}
    pytensor_linker = None
    if "pytensor" in sys.modules:
        with contextlib.suppress(Exception):
            from pytensor.compile.mode import get_default_mode

            pytensor_linker = type(get_default_mode().linker).__name__
    commit = None
    with contextlib.suppress(Exception):
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        if commit and dirty:
            commit += " (with uncommitted changes)"
    return {
        "cpu": cpu, "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_bytes": mem, "platform": platform.platform(),
        "python": platform.python_version(), "versions": versions, "numpy_blas": blas,
        "symgrad_mode": symgrad_mode, "pytensor_linker": pytensor_linker,
        "symgrad_numba_cache": numba_cache_dir(),
        "threads": cfg.threads, "thread_env": thread_env(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "loadavg_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "git_commit": commit, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


# -- reports --------------------------------------------------------------------------------------

def fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.1f} us"
    if t < 1:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else (f"{r:.2f}x" if r < 100 else f"{r:.0f}x")


def fmt_mem(b: int | None) -> str:
    return "-" if b is None else f"{b / 2**20:.1f} MB"


STATUS_WORDS = {"ok": "ok", "absent": "absent", "unsupported": "not supported yet",
                "failed": "FAILED", "timeout": "TIMEOUT", "skipped": "skipped"}


def status_text(r: dict) -> str:
    if r["status"] == "ok":
        if r.get("check") == "MISMATCH":
            text = f"MISMATCH ({r['check_detail']})"
        else:
            text = "ok (ref)" if r.get("check") == "ref" else (
                "ok" if r.get("check") == "ok" else "ok (unchecked)")
        return text + (f", numba cache {r['cache']}" if r.get("cache") else "")
    if r["status"] == "skipped":
        return f"skipped {r['message']}".strip()
    word = STATUS_WORDS[r["status"]]
    return f"{word} ({r['message']})" if r["message"] and r["status"] != "absent" else word


def table_rows(case: dict) -> tuple[list[str], list[list[str]]]:
    if case["kind"] == "cold":
        head = ["system", "import", "build+compile", "first call", "process wall",
                "(min-max)", "runs", "symgrad/x", "status"]
        rows = []
        for r in case["results"]:
            if r["status"] != "ok":
                rows.append([r["system"]] + ["-"] * 7 + [status_text(r)])
                continue
            rows.append([r["system"], fmt_time(r["import_s"]),
                         fmt_time(r["build_s"] + r["compile_s"]), fmt_time(r["first_s"]),
                         fmt_time(r["total_s"]),
                         f"{fmt_time(r['min_s'])}-{fmt_time(r['max_s'])}", str(r["reps"]),
                         fmt_ratio(r["ratio_first_result"]), status_text(r)])
        return head, rows
    head = ["system", "build+compile", "first call", "median", "IQR", "reps",
            "symgrad/x", "1st result symgrad/x", "x/JAX jit", "1st result x/JAX jit", "peak mem",
            "status"]
    rows = []
    jax_ok = [r for r in case["results"] if r["family"] == "jax" and r["status"] == "ok"]
    jax_median = min((r["median_s"] for r in jax_ok if r.get("median_s")), default=None)
    jax_first = min((to_first_result(r) for r in jax_ok if to_first_result(r)), default=None)

    def over_jax(value, jax_value):
        return fmt_ratio(value / jax_value) if value and jax_value else "-"

    for r in case["results"]:
        if r["status"] != "ok":
            rows.append([r["system"]] + ["-"] * 10 + [status_text(r)])
            continue
        iqr = "-" if r["q1_s"] is None else f"{fmt_time(r['q1_s'])}-{fmt_time(r['q3_s'])}"
        reps = f"{r['reps']}x{r['inner']}" if r["inner"] and r["inner"] > 1 else str(r["reps"])
        if r.get("isolated"):
            reps += " (subproc)"
        rows.append([r["system"], fmt_time(r["build_s"] + r["compile_s"]),
                     fmt_time(r["first_s"]), fmt_time(r["median_s"]), iqr, reps,
                     fmt_ratio(r["ratio_median"]), fmt_ratio(r["ratio_first_result"]),
                     over_jax(r["median_s"], jax_median), over_jax(to_first_result(r), jax_first),
                     fmt_mem(r["peak_mem_bytes"]), status_text(r)])
    return head, rows


SUMMARY_FAMILIES = (("PyTensor", ("pytensor",)), ("JAX", ("jax",)), ("NumPy", ("numpy", "scipy")),
                    ("numba", ("numba",)))


def summary_rows(data: dict) -> tuple[list[str], list[list[str]]]:
    """One row a case: symgrad's time, then symgrad / the fastest variant of each peer.

    The time is the steady median, except for cold starts (process wall time) and workloads
    whose point is compilation (``SUMMARY = "first result"``: build + compile + first call)."""
    head = ["case", "metric", "symgrad", "best symgrad backend", "best/JAX"] + \
        [f"symgrad/{name} (its time)" for name, _ in SUMMARY_FAMILIES]
    rows = []
    for wl in data["workloads"]:
        for case in wl["cases"]:
            if case["kind"] == "cold":
                metric, value = "process wall", (lambda r: r.get("total_s"))
            elif wl.get("summary") == "first result":
                metric, value = "1st result", to_first_result
            else:
                metric, value = "median", (lambda r: r.get("median_s"))
            res = case["results"]
            ref = next((r for r in res if r["family"] == "symgrad" and r["status"] == "ok"), None)
            sg = next((r for r in res if r["family"] == "symgrad"), None)
            row = [f"{wl['name']} {case['label']}", metric]
            if ref is not None:
                row.append(f"{fmt_time(value(ref))} ({ref['system']})")
            else:
                row.append("-" if sg is None else STATUS_WORDS[sg["status"]])
            row += best_backend_cells(res, value)
            for _, families in SUMMARY_FAMILIES:
                peers = [r for r in res if r["family"] in families]
                timed = [r for r in peers if r["status"] == "ok" and value(r)]
                if not timed:
                    row.append(STATUS_WORDS[peers[0]["status"]] if peers else "")
                    continue
                best = min(timed, key=value)
                flag = " MISMATCH" if any(r.get("check") == "MISMATCH" for r in peers) else ""
                ratio = fmt_ratio(value(ref) / value(best)) if ref is not None else "-"
                row.append(f"{ratio} ({fmt_time(value(best))}){flag}")
            rows.append(row)
    return head, rows


def first_result_rows(data: dict) -> tuple[list[str], list[list[str]]]:
    """Time to the first result (build + compile + first call) of each steady-state case
    with a PyTensor row: symgrad's default backend and its numba backend beside PyTensor
    with its cache warm and empty, and the ratios the issues' compile bars name."""
    def best(res, prefix, exact=False):
        rows = [r for r in res if r["status"] == "ok" and to_first_result(r) and (
            r["system"] == prefix if exact else r["system"].startswith(prefix))]
        return min(rows, key=to_first_result) if rows else None

    def cell(r):
        return fmt_time(to_first_result(r)) if r is not None else "-"

    def ratio(a, b):  # small ratios as fractions: the bars are "1/100", "1/10"
        if not (a and b):
            return "-"
        r = to_first_result(a) / to_first_result(b)
        return f"1/{1 / r:.0f}" if 0 < r < 0.1 else fmt_ratio(r)

    head = ["case", "symgrad", "symgrad-numba (warm)", "symgrad-numba (cold)",
            "PyTensor (warm cache)", "PyTensor (empty cache)", "JAX",
            "symgrad / PyTensor empty", "symgrad / PyTensor warm",
            "numba cold / PyTensor empty", "numba warm / PyTensor warm"]
    rows = []
    for wl in data["workloads"]:
        if wl.get("summary") == "first result":
            continue
        for case in wl["cases"]:
            res = case["results"]
            if case["kind"] == "cold" or not any(r["family"] == "pytensor" for r in res):
                continue
            sg = next((r for r in res if r["family"] == "symgrad" and r["status"] == "ok"), None)
            nb, nbc = best(res, "symgrad-numba "), best(res, "symgrad-numba-cold")
            pt = best(res, "pytensor ") or best(res, "pytensor", exact=True)
            ptc = best(res, "pytensor-cold")
            jx = best(res, "jax")
            rows.append([f"{wl['name']} {case['label']}", cell(sg), cell(nb), cell(nbc), cell(pt),
                         cell(ptc), cell(jx), ratio(sg, ptc), ratio(sg, pt), ratio(nbc, ptc),
                         ratio(nb, pt)])
    return head, rows


def best_backend_cells(res: list[dict], value) -> list[str]:
    """The fastest symgrad row of any backend (its time and name), and its time over the
    fastest JAX row's; blank where the case has no row of symgrad's JAX or numba backend."""
    if not any(r["family"] in SYMGRAD_MODES and r["family"] != "symgrad" for r in res):
        return ["", ""]
    timed = [r for r in res if r["family"] in SYMGRAD_MODES and r["status"] == "ok" and value(r)]
    if not timed:
        return ["-", "-"]
    best = min(timed, key=value)
    flag = " MISMATCH" if best.get("check") == "MISMATCH" else ""
    jax = [value(r) for r in res if r["family"] == "jax" and r["status"] == "ok" and value(r)]
    ratio = fmt_ratio(value(best) / min(jax)) if jax else "-"
    return [f"{fmt_time(value(best))} ({best['system']}){flag}", ratio]


def _text_table(head: list[str], rows: list[list[str]]) -> list[str]:
    """Left-justified columns, the header first."""
    widths = [max(len(head[k]), *(len(row[k]) for row in rows)) if rows else len(head[k])
              for k in range(len(head))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [head] + rows]


def render_text(data: dict) -> str:
    lines = []
    for wl in data["workloads"]:
        lines.append(f"\n== {wl['name']}: {wl['title']}  ({wl['wall_s']:.1f} s)")
        for case in wl["cases"]:
            lines.append(f"-- {case['label']}" + (f"  [{case['note']}]" if case["note"] else ""))
            head, rows = table_rows(case)
            widths = [max(len(head[k]), *(len(row[k]) for row in rows)) if rows else len(head[k])
                      for k in range(len(head))]
            lines.append("  ".join(h.ljust(w) for h, w in zip(head[:-1], widths)) + "  status")
            for row in rows:
                cells = [row[0].ljust(widths[0])]
                cells += [c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1])]
                lines.append("  ".join(cells + [row[-1]]))
    head, rows = summary_rows(data)
    lines.append("\n== summary: symgrad's time (default backend), the fastest symgrad backend "
                 "and its time / JAX's, and symgrad / the fastest variant of each peer "
                 "(>1: symgrad slower)")
    lines += _text_table(head, rows)
    head, rows = first_result_rows(data)
    if rows:
        lines.append("\n== time to the first result (build + compile + first call)")
        lines += _text_table(head, rows)
    lines += mismatch_lines(data)
    return "\n".join(lines)


def mismatch_lines(data: dict) -> list[str]:
    out = []
    for wl in data["workloads"]:
        for case in wl["cases"]:
            for r in case["results"]:
                if r.get("check") == "MISMATCH":
                    out.append(f"MISMATCH: {wl['name']} {case['label']} {r['system']}: "
                               f"{r['check_detail']}")
    return out


def unsupported_lines(data: dict) -> list[str]:
    out = []
    for wl in data["workloads"]:
        for case in wl["cases"]:
            for r in case["results"]:
                if r["status"] == "unsupported":
                    out.append(f"{wl['name']} {case['label']} / {r['system']}: {r['message']}")
    return out


def _load(avg) -> str:
    return "?" if not avg else f"{avg[0]:.2f}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table (and a blank line after it)."""
    return (["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
            + ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows] + [""])


def render_markdown(data: dict) -> str:
    env = data["environment"]
    v = env["versions"]
    mem = f"{env['memory_bytes'] / 2**30:.1f} GiB" if env.get("memory_bytes") else "?"
    lines = [
        "# Benchmarks",
        "",
        "Generated by the benchmark suite in `bench/` (issue 4); do not edit by hand.",
        "",
        f"Command: `{data['command']}`",
        "",
        "Peers: `pip install \".[bench]\"` (PyTensor, JAX, numba); a peer that is not installed "
        "shows as *absent*. One workload on small sizes: `python -m bench W3 --quick`; "
        "re-render a saved run: `python -m bench --from-json bench/last.json --markdown "
        "BENCHMARKS.md`; `python -m bench --help` lists the options.",
        "",
        f"Run: {env['date']}, commit {env.get('git_commit')}, mode "
        f"{'quick' if data['config']['quick'] else 'full'}, total {data['wall_s']:.0f} s.",
        "",
        "## Machine",
        "",
        f"- CPU: {env['cpu']}, {env['cores']} cores ({env['cores_usable']} usable), {mem} RAM",
        f"- {env['platform']}, Python {env['python']}",
        f"- NumPy {v.get('numpy')} with {env['numpy_blas'].get('blas')} "
        f"({env['numpy_blas'].get('blas_config')}); SciPy {v.get('scipy')}",
        f"- symgrad {v.get('symgrad')} (default mode {env['symgrad_mode']}); "
        f"PyTensor {v.get('pytensor')} (default linker {env.get('pytensor_linker')}); "
        f"JAX {v.get('jax')} / jaxlib {v.get('jaxlib')} (CPU, x64, jit); "
        f"numba {v.get('numba')} / llvmlite {v.get('llvmlite')}",
        f"- Load average (1 min) at start / end: {_load(env.get('loadavg_start'))} / "
        f"{_load(env.get('loadavg_end'))} (other work on the machine inflates times and spreads)",
        f"- Threads: {env['threads']} for every system: "
        + ", ".join(f"`{k}={val}`" for k, val in env["thread_env"].items() if val is not None),
        "",
        "## How to read the tables",
        "",
        "- *build+compile*: graph construction plus `function()` (JAX: `jax.jit`; NumPy: 0). "
        "PyTensor's numba backend, JAX and numba compile lazily, inside the *first call*; "
        "*1st result symgrad/x* compares build+compile+first call. PyTensor's on-disk compile "
        "cache is warm, as on a user's second run (its first-ever numba compile of a scan or "
        "a large graph can take tens of seconds more), except in W8, which measures "
        "compilation from an empty cache.",
        "- *median*, *IQR*: steady-state time of one call. Samples are taken with the systems "
        "interleaved (the order rotates each round), adaptively: calls are batched so a "
        "sample lasts at least ~1 ms (`reps` shows samples x calls per sample), and samples "
        "are taken until about "
        f"{data['config_effective']['sample_budget']} s or {data['config_effective']['max_reps']} "
        "samples. Rows marked *subproc* ran alone in a subprocess with a timeout.",
        "- *symgrad/x*: symgrad's median divided by this system's (above 1: symgrad is slower). "
        "*symgrad* is symgrad's default mode (the reference of every ratio and check).",
        "- *symgrad-jax*, *symgrad-numba*: symgrad compiled with `mode=\"JAX\"` / "
        "`mode=\"NUMBA\"` (issue 7); *symgrad-jax-device*: the same `mode=\"JAX\"` function "
        "called through `symgrad.backends.jax.device_function` (JAX arrays out, as in JAX's "
        "own rows, instead of numpy arrays). Their build+compile and first call include the XLA / "
        "numba compilation. *x/JAX jit*: this system's median (and time to the first result) "
        "divided by the fastest JAX `jit` row's (above 1: slower than JAX). The status of a "
        "numba row says whether numba's disk cache (`$SYMGRAD_CACHE_DIR/numba`, default "
        f"`{env.get('symgrad_numba_cache') or '~/.cache/symgrad/numba'}`) was *warm* (machine "
        "code loaded from disk), *cold* (compiled) or *in-process* (compiled earlier in the "
        "same process). *symgrad-numba-cold* rows measure a cold compile: a subprocess whose "
        "`SYMGRAD_CACHE_DIR` is a fresh empty directory; `--quick` skips them, and skips "
        "symgrad-numba rows whose cache is cold.",
        "- *peak mem*: the extra resident memory of one steady call, measured in a fresh "
        "subprocess: VmHWM reset through `/proc/self/clear_refs` before the call, minus VmRSS "
        "before it, with glibc told to `mmap` blocks above 64 KiB so freed arrays leave the "
        "RSS. It counts outputs and temporaries, not the inputs; it works for every system "
        "(NumPy, XLA and numba allocations alike).",
        "- Before timing, every system's first output is compared with symgrad's "
        "(`np.allclose`, rtol 1e-6 for float64, atol 1e-9 scaled by the output's magnitude); "
        "a disagreement shows as **MISMATCH**. *not supported yet* means symgrad lacks a "
        "feature the workload needs (the exception is quoted); *absent*: the peer is not "
        "installed.",
        "",
    ]
    mism = mismatch_lines(data)
    if mism:
        lines += ["## MISMATCHES", ""] + [f"- **{m}**" for m in mism] + [""]
    head, rows = summary_rows(data)
    lines += ["## Summary", "",
              "symgrad's time (default mode; the steady-state median; cold start: process wall "
              "time; W8: time to the first result, build + compile + first call); the fastest "
              "row of any symgrad backend (default, JAX, numba) and its time divided by the "
              "fastest JAX `jit` row's (*best/JAX*, blank where a case has no other backend "
              "row); and symgrad's (default mode) time divided by the fastest variant of each "
              "peer, whose own time is in parentheses (above 1: symgrad is slower).", ""]
    lines += _md_table(head, rows)
    head, rows = first_result_rows(data)
    if rows:
        lines += ["## Time to the first result", "",
                  "Build + compile + first call of each case (the fastest row of each kind; "
                  "medians over fresh graphs where a case builds several). *PyTensor (empty "
                  "cache)* is a subprocess whose compile caches start empty, as on a user's "
                  "first run; *(warm cache)* reuses kernels PyTensor compiled on earlier runs. "
                  "*symgrad-numba (cold)* likewise starts with an empty numba cache. Ratios "
                  "below 1: symgrad reaches the first result sooner.", ""]
        lines += _md_table(head, rows)
    for wl in data["workloads"]:
        lines += [f"## {wl['name']}: {wl['title']}", ""]
        if wl.get("about"):
            lines += [wl["about"], ""]
        for case in wl["cases"]:
            lines.append(f"**{case['label']}**" + (f": {case['note']}" if case["note"] else ""))
            lines.append("")
            head, rows = table_rows(case)
            lines.append("| " + " | ".join(head) + " |")
            lines.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 2) + ["---"]) + "|")
            for row in rows:
                lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
            lines.append("")
    unsup = unsupported_lines(data)
    lines += ["## Not supported yet in symgrad", ""]
    lines += [f"- {u}" for u in unsup] if unsup else ["Nothing: every workload ran."]
    lines.append("")
    return "\n".join(lines)


# -- entry point ----------------------------------------------------------------------------------

def parse_args(argv):
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("workloads", nargs="*", metavar="W", help="W1..W8 (default: all)")
    p.add_argument("--quick", action="store_true", help="small sizes, few repetitions")
    p.add_argument("--threads", type=int, default=1, help="threads for every system (default 1)")
    p.add_argument("--repeat", type=int, default=None, help="most steady-state samples per system")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds of steady-state samples per system (default 0.2; quick 0.02)")
    p.add_argument("--json", metavar="PATH", help="write the raw numbers as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the tables as markdown")
    p.add_argument("--from-json", metavar="PATH",
                   help="render an earlier --json file instead of running")
    p.add_argument("--systems", default=None,
                   help="comma-separated name prefixes of the systems to run (e.g. symgrad,numpy; "
                        "symgrad-jax, symgrad-numba, symgrad-numba-cold select symgrad's other "
                        "backends); a prefix written -P leaves out the systems starting with P, "
                        "e.g. --systems=symgrad,-symgrad- (the default backend only)")
    p.add_argument("--memory", action=argparse.BooleanOptionalAction, default=None,
                   help="measure peak memory in subprocesses (default: on, off with --quick)")
    p.add_argument("--no-cold", action="store_true", help="skip the cold-start subprocesses")
    p.add_argument("--strict", action="store_true", help="exit 1 on any MISMATCH")
    return p.parse_args(argv)


def main(argv) -> int:
    args = parse_args(argv)
    names = [w.upper() for w in args.workloads] or list(WORKLOADS)
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown:
        print(f"unknown workload(s) {unknown}; choose from {', '.join(WORKLOADS)}", file=sys.stderr)
        return 2
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
    else:
        cfg = Config(quick=args.quick, threads=args.threads, repeat=args.repeat,
                     budget=args.budget, memory=args.memory, cold=not args.no_cold,
                     systems=args.systems.split(",") if args.systems else None)
        print(f"bench: {'quick' if cfg.quick else 'full'} run of {', '.join(names)} with "
              f"{cfg.threads} thread(s)", flush=True)
        t0 = perf()
        load_start = os.getloadavg() if hasattr(os, "getloadavg") else None

        def log(msg):
            print(msg, flush=True)

        workloads = [run_workload(n, cfg, log) for n in names]
        data = {"command": "python -m bench" + "".join(f" {a}" for a in argv),
                "config": asdict(cfg),
                "config_effective": {"min_reps": cfg.min_reps, "max_reps": cfg.max_reps,
                                     "sample_budget": cfg.sample_budget,
                                     "max_time": cfg.max_time},
                "environment": environment(cfg) | {"loadavg_start": load_start},
                "workloads": workloads, "wall_s": perf() - t0}
    print(render_text(data))
    env = data["environment"]
    print(f"\nthreads: {env['threads']} ({env['thread_env']}); total {data['wall_s']:.1f} s")
    if args.json and not args.from_json:
        Path(args.json).write_text(json.dumps(data, indent=1, default=_json_default))
        print(f"wrote {args.json}")
    if args.markdown:
        Path(args.markdown).write_text(render_markdown(data))
        print(f"wrote {args.markdown}")
    return 1 if args.strict and mismatch_lines(data) else 0


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
