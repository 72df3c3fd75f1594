"""The benchmark suite keeps running: ``python -m bench`` on tiny sizes, and the harness's
verdicts (not supported yet, FAILED, MISMATCH, absent). No timing is ever asserted."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_quick_runs_and_prints_a_table(tmp_path):
    out_json, out_md = tmp_path / "out.json", tmp_path / "out.md"
    cmd = [sys.executable, "-m", "bench", "w1", "W2", "--quick", "--no-cold", "--repeat", "3",
           "--systems=symgrad,numpy,-symgrad-", "--json", str(out_json), "--markdown", str(out_md)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "== W1" in proc.stdout and "== W2" in proc.stdout
    assert "build+compile" in proc.stdout and "status" in proc.stdout
    data = json.loads(out_json.read_text())
    assert [w["name"] for w in data["workloads"]] == ["W1", "W2"]
    names = {r["system"] for wl in data["workloads"] for c in wl["cases"] for r in c["results"]}
    assert "symgrad" in names and not any(n.startswith("symgrad-") for n in names)
    assert data["environment"]["thread_env"]["OMP_NUM_THREADS"] == "1"
    for wl in data["workloads"]:
        for case in wl["cases"]:
            for r in case["results"]:
                assert r["status"] in ("ok", "absent", "unsupported")
                assert r["check"] != "MISMATCH", r
    assert "| system |" in out_md.read_text()


def _case(*systems, **kw):
    from bench.harness import Case

    return Case("tiny", list(systems), **kw)


def _system(name, family, fn):
    from bench.harness import System

    return System(name, family, build=lambda: None, compile=lambda _: fn)


def test_harness_verdicts():
    from bench.harness import Config, render_markdown, render_text, run_case

    def missing():
        raise AttributeError("module 'symgrad.tensor' has no attribute 'sum'")

    def broken():
        raise RecursionError("maximum recursion depth exceeded")

    cfg = Config(quick=True, repeat=2, budget=0.001)
    case = _case(_system("symgrad", "symgrad", missing), _system("numpy", "numpy", lambda: np.ones(3)),
                 _system("numpy off", "numpy", lambda: np.ones(3) + 1e-3),
                 _system("peer", "numpy", broken),
                 _system("nowhere", "not_a_module_xyz", lambda: np.ones(3)))
    out = run_case("W0", case, cfg, log=lambda msg: None)
    by = {r["system"]: r for r in out["results"]}
    assert by["symgrad"]["status"] == "unsupported"
    assert "has no attribute 'sum'" in by["symgrad"]["message"]
    assert by["numpy"]["check"] == "ref"      # the first working system stands in for symgrad
    assert by["numpy off"]["check"] == "MISMATCH"
    assert by["peer"]["status"] == "failed" and "RecursionError" in by["peer"]["message"]
    assert by["nowhere"]["status"] == "absent"
    assert by["numpy"]["reps"] >= 1 and by["numpy"]["median_s"] > 0
    data = {"command": "python -m bench", "config": {"quick": True}, "wall_s": 0.0,
            "config_effective": {"sample_budget": 0.001, "max_reps": 2},
            "environment": {"date": "-", "cpu": "-", "cores": 1, "cores_usable": 1,
                            "platform": "-", "python": "-", "versions": {}, "numpy_blas": {},
                            "symgrad_mode": "-", "threads": 1, "thread_env": {}},
            "workloads": [{"name": "W0", "title": "tiny", "wall_s": 0.0, "cases": [out]}]}
    text = render_text(data)
    assert "MISMATCH: W0 tiny numpy off" in text
    assert "not supported yet" in text
    md = render_markdown(data)
    assert "**MISMATCH" in md and "not supported yet" in md


def test_thread_env_is_set_from_argv(monkeypatch):
    from bench import _env

    for var in _env.THREAD_VARS + ("XLA_FLAGS", "JAX_PLATFORMS", "BENCH_THREADS"):
        monkeypatch.setenv(var, "")  # (recorded, so that the teardown restores it)
        monkeypatch.delenv(var)
    assert _env.set_thread_env(["W1", "--threads", "2"]) == 2
    env = _env.thread_env()
    assert env["OMP_NUM_THREADS"] == env["NUMBA_NUM_THREADS"] == "2"
    assert "intra_op_parallelism_threads=2" in env["XLA_FLAGS"]
    assert env["XLA_FLAGS"].startswith("--")  # (else XLA reads it as a file name and aborts)
    assert _env.threads_from_argv(["--quick"]) == 1


def test_a_timed_out_system_is_skipped_on_larger_sizes():
    from bench.harness import BenchTimeout, Config, run_case

    def hangs():
        raise BenchTimeout(">1 s")

    cfg = Config(quick=True, repeat=1, budget=0.001)
    timed_out = {}
    small = run_case("W0", _case(_system("peer", "numpy", hangs), escalates="n"), cfg,
                     log=lambda msg: None, timed_out=timed_out)
    assert small["results"][0]["status"] == "timeout"
    big = run_case("W0", _case(_system("peer", "numpy", lambda: np.ones(2)), escalates="n"), cfg,
                   log=lambda msg: None, timed_out=timed_out)
    assert big["results"][0]["message"] == "skipped: timed out on tiny"


def test_systems_prefixes_select_and_leave_out():
    from bench.harness import Config

    cfg = Config(systems=["symgrad", "jax", "-symgrad-numba"])
    assert cfg.wants("symgrad") and cfg.wants("symgrad-jax scan") and cfg.wants("jax jit step")
    assert not cfg.wants("symgrad-numba scan") and not cfg.wants("symgrad-numba-cold scan")
    assert not cfg.wants("numpy")
    only_default = Config(systems=["-symgrad-"])
    assert only_default.wants("symgrad scan") and only_default.wants("pytensor")
    assert not only_default.wants("symgrad-jax scan")


def test_symgrad_backend_rows_are_skipped_or_reported():
    """The issue-7 rows: the numba row on an empty cache is not run in --quick, and the
    summary shows the fastest symgrad backend next to the default one."""
    from bench.harness import Config, render_text, run_case, summary_rows, symgrad_backend_systems

    def make(family):
        return _system(f"{family} tiny", family, lambda: np.ones(3))

    quick = symgrad_backend_systems(make, Config(quick=True))
    assert [s.name for s in quick] == ["symgrad-jax tiny", "symgrad-jax-device tiny",
                                       "symgrad-numba tiny", "symgrad-numba-cold tiny"]
    cold = quick[-1]
    assert cold.isolate and cold.env == {"SYMGRAD_CACHE_DIR": "{tmp}"} and not cold.memory
    assert cold.skip == "in --quick (cold numba compile)"
    assert not symgrad_backend_systems(make, Config(quick=False))[-1].skip
    assert len(symgrad_backend_systems(make, Config(), cold=False)) == 3

    cfg = Config(quick=True, repeat=2, budget=0.001)
    out = run_case("W0", _case(_system("symgrad", "symgrad", lambda: np.ones(3)), cold,
                               _system("fast", "symgrad-jax", lambda: np.ones(3))), cfg,
                   log=lambda msg: None)
    by = {r["system"]: r for r in out["results"]}
    assert by["symgrad-numba-cold tiny"]["status"] == "skipped"
    assert by["symgrad"]["check"] == "ref"
    if by["fast"]["status"] == "ok":  # JAX installed: the family is available
        assert by["fast"]["check"] == "ok"
    by["symgrad"]["median_s"], by["fast"]["median_s"] = 2e-3, 1e-3
    jax = dict(by["fast"], system="jax", family="jax", median_s=4e-3, status="ok")
    out["results"].append(jax)
    data = {"workloads": [{"name": "W0", "title": "tiny", "wall_s": 0.0, "cases": [out]}]}
    head, rows = summary_rows(data)
    row = dict(zip(head, rows[0]))
    assert row["symgrad"] == "2.00 ms (symgrad)"
    if by["fast"]["status"] == "ok":
        assert row["best symgrad backend"] == "1.00 ms (fast)" and row["best/JAX"] == "0.25x"
    assert "skipped in --quick (cold numba compile)" in render_text(data)


def test_numba_rows_skip_a_cold_compile_in_quick(tmp_path, monkeypatch):
    """A symgrad-numba row whose graph is not in numba's disk cache is skipped in --quick
    before its first call (nothing is compiled)."""
    pytest.importorskip("numba")
    from bench.harness import Case, Config, System, run_case, tensor_lib

    monkeypatch.setenv("SYMGRAD_CACHE_DIR", str(tmp_path))

    def build():
        lib = tensor_lib("symgrad-numba")
        x = lib.T.dvector("x")
        return lib, x, lib.T.tanh(x * 3.25) + 0.125

    def compile(built):
        lib, x, y = built
        f = lib.function([x], y)
        return lambda: f(np.ones(3))

    case = Case("tiny", [System("symgrad-numba tiny", "symgrad-numba", build, compile)])
    out = run_case("W0", case, Config(quick=True, repeat=1, budget=0.001), log=lambda m: None)
    res = out["results"][0]
    assert res["status"] == "skipped", res
    assert res["message"] == "in --quick (cold numba compile)"


def test_device_family_returns_jax_arrays_with_the_same_values():
    pytest.importorskip("jax", reason="jax is not installed")
    import jax

    from bench.harness import tensor_lib

    lib = tensor_lib("symgrad-jax-device")
    x = lib.T.dvector("x")
    f = lib.function([x], lib.grad(lib.T.sum(lib.T.tanh(x) ** 2), x))
    out = f(np.linspace(-1, 1, 5))
    assert isinstance(out, jax.Array)
    ref = tensor_lib("symgrad").function([x], lib.grad(lib.T.sum(lib.T.tanh(x) ** 2), x))
    np.testing.assert_allclose(np.asarray(out), ref(np.linspace(-1, 1, 5)), rtol=1e-12)
