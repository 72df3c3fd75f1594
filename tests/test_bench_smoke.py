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
           "--systems", "symgrad,numpy", "--json", str(out_json), "--markdown", str(out_md)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "== W1" in proc.stdout and "== W2" in proc.stdout
    assert "build+compile" in proc.stdout and "status" in proc.stdout
    data = json.loads(out_json.read_text())
    assert [w["name"] for w in data["workloads"]] == ["W1", "W2"]
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
        monkeypatch.delenv(var, raising=False)
    assert _env.set_thread_env(["W1", "--threads", "2"]) == 2
    env = _env.thread_env()
    assert env["OMP_NUM_THREADS"] == env["NUMBA_NUM_THREADS"] == "2"
    assert "intra_op_parallelism_threads=2" in env["XLA_FLAGS"]
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
