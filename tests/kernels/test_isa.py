"""Run-time ISA choice (dtnn._kernels.isa, csrc/isa.c) and what ``dtnn info`` says
about it: every compiled kernel reports the path that runs here, never one this CPU
(or the DTNN_ISA cap) rules out."""
import json
import os
import subprocess
import sys

import pytest

from dtnn._kernels import isa
from dtnn.cli.info import format_kernels
from dtnn.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_requested_validates_the_environment(monkeypatch):
    monkeypatch.delenv("DTNN_KERNELS", raising=False)
    monkeypatch.delenv("DTNN_ISA", raising=False)
    assert isa.requested() == "auto"
    for value in ("avx512", "avx2", "generic", "numpy"):
        monkeypatch.setenv("DTNN_ISA", value)
        assert isa.requested() == value
    monkeypatch.setenv("DTNN_ISA", "avx")
    with pytest.raises(ConfigError, match="DTNN_ISA='avx' is not one of"):
        isa.requested()
    monkeypatch.setattr(isa, "_warned", [])
    with pytest.warns(UserWarning, match="ignored"):
        assert isa.requested(strict=False) == "auto"
    monkeypatch.setenv("DTNN_ISA", "avx2")
    monkeypatch.setenv("DTNN_KERNELS", "numpy")
    assert isa.requested() == "numpy"


def test_capped_sets_every_module_and_restores():
    mods = isa._modules()
    if not mods:
        pytest.skip("no compiled kernel module is built")
    before = [m.isa_active() for m in mods]
    cpu = isa.LEVELS.index(isa.cpu())
    for level in isa.LEVELS[:cpu + 1]:
        with isa.capped(level):
            assert {m.isa_active() for m in mods} == {isa.LEVELS.index(level)}
            if isa.requested(strict=False) != "numpy":
                assert isa.active() == level
    assert [m.isa_active() for m in mods] == before
    with isa.capped("avx512"):           # a cap above the CPU is the CPU's level
        assert {m.isa_active() for m in mods} == {cpu}


def _check_truthful(report, cpu_level, level):
    top = isa.LEVELS.index(cpu_level)
    for name, k in report.items():
        assert k["runs"] not in k["cannot_run"] and k["runs"] not in k["capped"], name
        for p in k["cannot_run"]:
            assert isa.LEVELS.index(p) > top, name
        if k["runs"] in isa.LEVELS:
            assert k["runs"] in k["compiled"]
            assert isa.LEVELS.index(k["runs"]) <= min(top, isa.LEVELS.index(level)), name


def test_kernel_report_on_this_cpu():
    import dtnn.compress  # noqa: F401  (resolve every kernel)
    import dtnn.conv  # noqa: F401
    report = isa.kernel_report()
    assert {"fused_forward", "direct_forward", "winograd_input", "im2col", "topk"} <= set(report)
    _check_truthful(report, isa.cpu(), isa.active())
    if isa.active() != "numpy" and report["fused_forward"]["compiled"]:
        from dtnn.conv.im2col import fused_isa
        assert report["fused_forward"]["runs"] == (fused_isa() or "unfold+GEMM")


@pytest.mark.parametrize("cpu_level", ["avx2", "generic"])
def test_kernel_report_on_a_smaller_cpu(monkeypatch, cpu_level):
    """What an AVX2-only (or pre-AVX2) CPU is told: the AVX-512 paths are compiled but
    cannot run, and the fused kernels give way to unfold + GEMM without AVX2."""
    import dtnn.conv  # noqa: F401
    from dtnn import _kernels
    if _kernels.active().get("fused_forward") != "compiled":
        pytest.skip("the compiled kernels are not in use (not built, or DTNN_ISA=numpy)")
    monkeypatch.setattr(isa, "cpu", lambda: cpu_level)
    monkeypatch.setattr(isa, "active", lambda: cpu_level)
    report = isa.kernel_report()
    _check_truthful(report, cpu_level, cpu_level)
    fused = report["fused_forward"]
    assert "avx512" in fused["cannot_run"]
    assert fused["runs"] == ("avx2" if cpu_level == "avx2" else "unfold+GEMM")
    assert report["direct_forward"]["runs"] == cpu_level
    text = "\n".join(format_kernels(report))
    assert "cannot run on this CPU: avx512" in text
    for line in text.splitlines():
        if "fused_forward" in line:
            assert line.split()[0] == fused["runs"]


def test_dtnn_info_json_follows_dtnn_isa():
    env = dict(os.environ, DTNN_ISA="generic")
    env.pop("DTNN_KERNELS", None)
    out = subprocess.run([sys.executable, "-m", "dtnn", "info", "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads(out.stdout)
    assert info["cpu"]["isa"] in ("generic", "numpy") and info["cpu"]["DTNN_ISA"] == "generic"
    if info["cpu"]["isa"] == "generic" and info["kernels"]["fused_forward"]["compiled"]:
        assert info["kernels"]["fused_forward"]["runs"] == "unfold+GEMM"
        assert info["kernels"]["direct_forward"]["runs"] == "generic"
        assert "avx2" in info["kernels"]["direct_forward"]["capped"]
    bad = subprocess.run([sys.executable, "-m", "dtnn", "info"], cwd=ROOT,
                         env=dict(env, DTNN_ISA="avx1024"), capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (
        "dtnn info: error: DTNN_ISA='avx1024' is not one of auto, avx512, avx2, generic, numpy")
