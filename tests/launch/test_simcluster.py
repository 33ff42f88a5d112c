"""launch/simcluster.py: pure helpers always; the real cluster (namespaces, tc, MPI over
shaped veths) only as root with CAP_NET_ADMIN/CAP_SYS_ADMIN and iproute2, else skipped."""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "launch", "simcluster.py")


def _load():
    spec = importlib.util.spec_from_file_location("simcluster", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


sc = _load()


def test_parse_rate():
    assert sc.parse_rate("100mbit") == 100_000_000
    assert sc.parse_rate("1gbit") == 1_000_000_000
    assert sc.parse_rate("1.5Gbit") == 1_500_000_000
    assert sc.parse_rate("10mbps") == 80_000_000      # tc: bps = bytes/s
    for bad in ("fast", "10", "-1mbit"):
        with pytest.raises(sc.SimError):
            sc.parse_rate(bad)


def test_parse_delay():
    assert sc.parse_delay("2ms") == pytest.approx(2e-3)
    assert sc.parse_delay("200us") == pytest.approx(2e-4)
    with pytest.raises(sc.SimError):
        sc.parse_delay("soon")


def test_tbf_bucket_never_below_two_gso_packets_or_1ms():
    for rate in (10e6, 100e6, 1e9, 10e9):
        burst, limit = sc.tbf_params(int(rate))
        assert burst >= 2 * 65536 and burst >= rate / 8 * 1e-3
        assert limit >= 4 * burst


def test_missing_tools_is_one_line(monkeypatch):
    monkeypatch.setattr(sc.shutil, "which", lambda name: None)
    with pytest.raises(sc.SimError) as err:
        sc.check_capabilities()
    assert "iproute2" in str(err.value) and "\n" not in str(err.value)


def _why_not_runnable():
    if sys.platform != "linux":
        return "not Linux"
    sc._ensure_sbin()
    for tool, pkg in (("ip", "iproute2"), ("tc", "iproute2"), ("unshare", "util-linux")):
        if shutil.which(tool) is None:
            return f"'{tool}' not installed (apt-get install {pkg})"
    try:
        sc.check_capabilities()
    except sc.SimError as exc:
        return str(exc)
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py not installed"
    if not os.path.exists(os.path.join(os.path.dirname(sys.executable), "mpiexec")):
        return "no mpiexec next to this Python (pip 'mpich')"
    return None


def _kernel_lacks():
    """Network namespaces, veth and tbf, tried in a scratch namespace (under the lock)."""
    probe = subprocess.run(["ip", "netns", "add", "dtnn-probe"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create network namespaces: {probe.stderr.strip()}"
    try:
        tbf = subprocess.run(
            "ip netns exec dtnn-probe ip link add p0 type veth peer name p1 && "
            "ip netns exec dtnn-probe tc qdisc add dev p0 root tbf rate 1mbit burst 131072 "
            "limit 524288", shell=True, capture_output=True, text=True)
        if tbf.returncode != 0:
            return f"no veth or tbf in this kernel: {tbf.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", "dtnn-probe"], capture_output=True)
    return None


def _run(*args, timeout=30):
    env = dict(os.environ, DTNN_SIMCLUSTER_LOCKED="1")     # the fixture holds the lock
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture
def cluster():
    """Holds the simcluster lock for the whole test, so nobody else's up/down/selftest
    (another engineer's test run, a benchmark) interleaves with ours; skips instead of
    touching a cluster that someone else has up."""
    why = _why_not_runnable()
    if why:
        pytest.skip(why)
    try:
        lock = sc.acquire_lock(wait=0)
    except sc.SimError as exc:
        pytest.skip(str(exc))
    try:
        if sc.load_state() or sc.ours():
            pytest.skip("a simulated cluster is already up: not touching it")
        why = _kernel_lacks()
        if why:
            pytest.skip(why)
        try:
            yield
        finally:
            _run("down")
    finally:
        os.close(lock)


@pytest.mark.slow
@pytest.mark.timeout(90, method="thread")
def test_up_selftest_status_down(cluster):
    res = _run("up", "2", "100mbit")
    assert res.returncode == 0, res.stdout + res.stderr
    again = _run("up", "2", "100mbit")                  # idempotent
    assert again.returncode == 0 and "already up" in again.stdout

    res = _run("selftest", timeout=50)
    print(res.stdout, res.stderr)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "PASS" in res.stdout and "100 Mbit/s" in res.stdout

    res = _run("status")
    assert res.returncode == 0, res.stdout
    assert "up: 2 hosts" in res.stdout and res.stdout.count("shaped both ways") == 2

    res = _run("down")
    assert res.returncode == 0, res.stderr
    left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [ln for ln in left.splitlines() if ln.startswith("dtnn")], left
    assert _run("status").returncode == 1
