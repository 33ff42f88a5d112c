#!/usr/bin/env python
"""Server-side latency of ``dtnn serve``: request arrival to answer, per request kind.

    /work/bin/quiet .venv/bin/python benchmarks/bench_serve.py \
        --out benchmarks/results/serve.md

Without ``--checkpoint`` it first trains the README's default model
(``configs/simplecnn.toml``: simplecnn on Fashion-MNIST) for one epoch into a scratch
directory (latency does not depend on the weights).  Then it starts ``dtnn serve`` as
a subprocess on a free port and sends, one after the other over one keep-alive HTTP
connection, the bodies the page sends: a drawing as the page's canvas PNG (660x330 at
device-pixel ratio 1 and 1320x660 at ratio 2), the same with ``segment=1`` and three
characters, and a raw 28x28 array as JSON.

"server" is the ``Server-Timing: app;dur=`` header: from the request's arrival in the
application to its answer (body read, decoding, preprocessing, model, JSON).  The
breakdown columns are the answer's own ``timings_ms``; "client" is the round trip seen
by this script (adds HTTP parsing and loopback).  Results go to ``--out`` (default a
scratch directory, never the committed file unless asked).
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def train_default(scratch: str) -> str:
    run_dir = os.path.join(scratch, "simplecnn")
    cmd = [sys.executable, "-m", "dtnn", "train", "--config",
           os.path.join(ROOT, "configs", "simplecnn.toml"), "--set", "train.epochs=1",
           "--set", "output.progress=false", "--run-dir", run_dir]
    print("training:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return os.path.join(run_dir, "checkpoint.h5")


def canvas_png(size, strokes, width) -> bytes:
    from PIL import Image, ImageDraw
    w, h = size
    img = Image.new("RGBA", size, (255, 255, 255, 255))   # the page's canvas is RGBA
    draw = ImageDraw.Draw(img)
    for stroke in strokes:
        draw.line([(x * w, y * h) for x, y in stroke], fill=(0, 0, 0, 255), width=width,
                  joint="curve")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


SEVEN = [[(0.38, 0.20), (0.62, 0.20), (0.46, 0.85)]]
LINE = [[(0.15, 0.2), (0.15, 0.8)], [(0.35, 0.2), (0.55, 0.2), (0.42, 0.8)],
        [(0.70, 0.5), (0.90, 0.5)], [(0.80, 0.3), (0.80, 0.7)]]


def cases():
    import numpy as np
    rng = np.random.default_rng(0)
    array = json.dumps({"array": rng.random((28, 28)).round(4).tolist()}).encode()
    return [
        ("canvas 660x330 PNG (ratio 1)", "/api/predict?top_k=5",
         canvas_png((660, 330), SEVEN, 16), "image/png"),
        ("canvas 1320x660 PNG (ratio 2)", "/api/predict?top_k=5",
         canvas_png((1320, 660), SEVEN, 32), "image/png"),
        ("canvas 660x330, segment=1, 3 characters", "/api/predict?top_k=5&segment=1",
         canvas_png((660, 330), LINE, 16), "image/png"),
        ("raw 28x28 array (JSON)", "/api/predict?top_k=5", array, "application/json"),
    ]


def measure(port: int, path: str, body: bytes, ctype: str, n: int, warmup: int):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    rows = []
    for i in range(warmup + n):
        t0 = time.perf_counter()
        conn.request("POST", path, body=body, headers={"Content-Type": ctype})
        res = conn.getresponse()
        data = res.read()
        rtt = 1e3 * (time.perf_counter() - t0)
        if res.status != 200:
            raise SystemExit(f"{path}: HTTP {res.status}: {data[:200]!r}")
        server = float(res.getheader("server-timing").split("dur=")[1])
        if i >= warmup:
            rows.append({"server": server, "client": rtt, **json.loads(data)["timings_ms"]})
    conn.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="default: train configs/simplecnn.toml for 1 epoch")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "dtnn-bench",
                                                  "serve.md"))
    args = ap.parse_args()
    from dtnn.bench.infer import cpu_description
    scratch = tempfile.mkdtemp(prefix="dtnn-bench-serve-")
    ckpt = args.checkpoint or train_default(scratch)
    proc = subprocess.Popen([sys.executable, "-m", "dtnn", "serve", ckpt, "--port", "0",
                             "--threads", str(args.threads)], stdout=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        print(line.strip(), flush=True)
        port = int(line.rsplit(":", 1)[1].strip(" /\n"))
        results = []
        for name, path, body, ctype in cases():
            rows = measure(port, path, body, ctype, args.requests, args.warmup)
            results.append((name, len(body), rows))
            med = statistics.median(r["server"] for r in rows)
            print(f"{name}: server median {med:.2f} ms", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    def q(rows, key, p):
        vals = sorted(r[key] for r in rows)
        return vals[min(len(vals) - 1, int(round(p * (len(vals) - 1))))]

    lines = [
        "| request | body bytes | server median (ms) | server p90 | decode | preprocess | "
        "model | client round trip median |",
        "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, size, rows in results:
        lines.append(f"| {name} | {size:,} | **{q(rows, 'server', 0.5):.2f}** | "
                     f"{q(rows, 'server', 0.9):.2f} | {q(rows, 'decode', 0.5):.2f} | "
                     f"{q(rows, 'preprocess', 0.5):.2f} | {q(rows, 'inference', 0.5):.2f} | "
                     f"{q(rows, 'client', 0.5):.2f} |")
    card_name = line.split(":")[1].strip()
    text = "\n".join([
        f"checkpoint: {os.path.basename(ckpt) if args.checkpoint else 'configs/simplecnn.toml, 1 epoch'} "
        f"({card_name}); {args.requests} requests per row after {args.warmup} warm-up, "
        f"sequential, one keep-alive connection; `--threads {args.threads}`",
        f"CPU: {cpu_description()}; load average at the end: "
        f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}",
        "", *lines, ""])
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        fh.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
