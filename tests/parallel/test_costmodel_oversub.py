"""The cost model's oversubscription term (dtnn.bench.costmodel.Oversub, fitted by
dtnn.bench.model.fit_oversub from dtnn.bench.oversub runs), on synthetic calibration
data with known answers: each of its three costs appears where it should and only
there, is zero at one rank per core where it must be, and the fit recovers the
parameters the synthetic runs were made with."""
import json

import pytest

from dtnn.bench.costmodel import Exchange, Link, Oversub, predict_step
from dtnn.bench.model import fit_oversub

LINK = Link(alpha=1e-4, beta=8 / 1e9)
MB = 1 << 20


def test_no_oversub_changes_nothing():
    ex = Exchange([(4 * MB, 0.5), (4 * MB, 0.9)])
    plain = predict_step(0.1, ex, 4, LINK)
    zero = predict_step(0.1, ex, 4, LINK, oversub=Oversub(), ranks_per_core=2.0)
    for key in ("step", "compute", "exposed", "recv_bytes"):
        assert zero[key] == pytest.approx(plain[key])
    assert zero["oversub"] == pytest.approx(0.0)


def test_cpu_of_bytes_moved_while_computing_lengthens_compute():
    c = 2e-9
    fast = Link(0.0, 1e-12)                         # the transfer ends long before compute
    ex = Exchange([(8 * MB, 0.0)])
    for s in (1.0, 2.0, 4.0):
        p = predict_step(1.0, ex, 4, fast, oversub=Oversub(cpu_per_byte=c), ranks_per_core=s)
        assert p["oversub_cpu"] == pytest.approx(s * c * p["recv_bytes"])
        assert p["step"] == pytest.approx(1.0 + s * c * p["recv_bytes"])
        assert p["efficiency"] == pytest.approx(1.0 / p["step"])   # against bare compute
    # spare cores take the transfer's CPU
    assert predict_step(1.0, ex, 4, fast, oversub=Oversub(cpu_per_byte=c),
                        ranks_per_core=0.5)["oversub_cpu"] == 0.0


def test_bytes_moved_after_compute_cost_no_compute():
    ex = Exchange([(8 * MB, 1.0)])                  # ready when compute ends
    p = predict_step(1.0, ex, 4, LINK, oversub=Oversub(cpu_per_byte=1e-9), ranks_per_core=2)
    plain = predict_step(1.0, ex, 4, LINK)
    assert p["oversub_cpu"] == 0.0
    assert p["step"] == pytest.approx(plain["step"])


def test_part_overlap_converges_to_the_fixed_point():
    # half of a long transfer overlaps compute; the longer compute overlaps more of it
    slow = Link(0.0, 1e-6)                          # 4.2 s on the wire, 0.5 s overlapped
    ex = Exchange([(4 * MB, 0.5)])
    c, s = 5e-9, 2.0
    p = predict_step(1.0, ex, 2, slow, oversub=Oversub(cpu_per_byte=c), ranks_per_core=s)
    net = 4 * MB * slow.beta                        # 2 ranks: the ring sends n/2 twice
    got = p["recv_bytes"]
    busy = p["compute"]
    overlapped = got * min(1.0, (busy - 0.5 * busy) / net)
    assert busy == pytest.approx(1.0 + s * c * overlapped, rel=1e-6)
    assert 1.0 < busy < 1.0 + s * c * got


def test_waits_for_peers_without_a_core():
    ex = Exchange([(1 * MB, 1.0)])
    hop, step = 3e-5, 2e-3
    plain = predict_step(0.1, ex, 4, LINK, "ring")
    for s in (1.0, 2.0, 3.0):
        p = predict_step(0.1, ex, 4, LINK, "ring", oversub=Oversub(0.0, hop, step),
                         ranks_per_core=s)
        hops = 2 * (4 - 1)
        assert p["step"] - plain["step"] == pytest.approx((s - 1) * (hops * hop + step))
        assert p["oversub"] == pytest.approx((s - 1) * (hops * hop + step))
    # MPI's recursive doubling pays its 2 log2 N hops, not 2 (N - 1)
    mpi = predict_step(0.1, ex, 8, LINK, "mpi", oversub=Oversub(0.0, hop, 0.0),
                       ranks_per_core=2.0)
    assert mpi["oversub"] == pytest.approx(6 * hop)
    # a single rank exchanges nothing and waits for nobody
    assert predict_step(0.1, ex, 1, LINK, oversub=Oversub(1e-9, hop, step),
                        ranks_per_core=2.0)["step"] == pytest.approx(0.1)


def _run(ranks, s, compute, cpu_per_byte, hop_s, after_s, sent=4 * MB, label=""):
    """One dtnn.bench.oversub JSON line whose phases follow the model exactly."""
    hops = 2 * (ranks - 1)
    phases = {"compute": {"compute": compute, "cpu": compute / max(1, s)},
              "sync_alone": {"wait": hops * hop_s},
              "sync": {"compute": compute, "wait": hops * hop_s + after_s},
              "buckets": {"compute": compute, "wait": after_s},
              "traffic": {"compute": compute + max(1.0, s) * cpu_per_byte * sent,
                          "wait": 0.0, "sent": float(sent)}}
    return json.dumps({"ranks": ranks, "oversubscription": s, "label": label,
                       "phases": [{"phase": k, "median": v} for k, v in phases.items()]})


def test_fit_oversub_recovers_the_synthetic_costs(tmp_path):
    c, hop1, hop2, end1, end2 = 1.5e-9, 2e-5, 6e-5, 3e-4, 1.8e-3
    path = tmp_path / "oversub.jsonl"
    path.write_text("\n".join([_run(2, 1.0, 0.044, c, hop1, end1),
                               _run(4, 2.0, 0.088, c, hop2, end2),
                               _run(2, 1.0, 0.045, c, hop1, end1 * 1.2),
                               _run(4, 2.0, 0.090, c, hop2 * 1.1, end2)]) + "\n")
    over, rows = fit_oversub(path)
    assert len(rows) == 4
    assert over.cpu_per_byte == pytest.approx(c, rel=1e-6)
    # one rank per core is the baseline (its least delayed run); per extra rank per core
    assert over.wait_per_hop == pytest.approx(hop2 * 1.05 - hop1, rel=1e-6)
    assert over.wait_per_step == pytest.approx(end2 - end1, rel=1e-6)
    # only one rank per core measured: nothing to say about sharing cores
    only = tmp_path / "one.jsonl"
    only.write_text(_run(2, 1.0, 0.044, c, hop1, end1) + "\n")
    o, _ = fit_oversub(only)
    assert (o.wait_per_hop, o.wait_per_step) == (0.0, 0.0)
    assert o.cpu_per_byte == pytest.approx(c, rel=1e-6)


@pytest.mark.parametrize("extra,message", [
    (["--oversub", "BAD"], "--oversub: not python -m dtnn.bench.oversub results"),
    (["--ranks-per-core", "0"], "--ranks-per-core: must be > 0"),
])
def test_bench_model_rejects_bad_oversub_input_before_any_work(tmp_path, capsys, extra,
                                                               message):
    from dtnn.cli.main import main
    sweep = tmp_path / "sweep.jsonl"
    sweep.write_text("")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ranks": 4}\n')
    out = tmp_path / "out"
    args = [str(bad) if a == "BAD" else a for a in extra]
    assert main(["bench", "model", "--sweep", str(sweep), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()                         # nothing written
