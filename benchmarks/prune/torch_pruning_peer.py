#!/usr/bin/env python
"""The torch-pruning peer of `dtnn prune`: the same model (the torch twin of the same
checkpoint, same weights), the same data stream, budget and schedule, pruned with
torch-pruning's own Taylor importance and global ranking.

    python benchmarks/prune/torch_pruning_peer.py CHECKPOINT --out DIR \
        [--keep 0.2] [--steps 16] [--batches 10] [--finetune 100] [--lr 0.01]

Per step: gradients of ``--batches`` mini-batches are accumulated (the Taylor
importance reads weight x gradient), ``pruner.step()`` removes channels (conv maps and
hidden Linear units; the classifier is ignored) along torch-pruning's linear schedule
to ``1 - keep`` of the channels, then ``--finetune`` SGD iterations (momentum 0.9,
Nesterov, weight decay 5e-4 as in the dtnn run). Writes DIR/prune.jsonl in dtnn's
record format (so dtnn.prune.report.compare overlays it) and prints the last record.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import dtnn  # noqa: F401  -- first (OpenBLAS spin time)
import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--out", required=True)
    p.add_argument("--keep", type=float, default=0.2)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--finetune", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import torch
    import torch_pruning as tp
    from dtnn.data import BatchLoader
    from dtnn.engine.session import config_from_checkpoint, load_data
    from dtnn.export.torch_twin import torch_twin
    from dtnn.io.checkpoint import load_checkpoint
    from dtnn.metrics import confusion_matrix, report_from_confusion
    from dtnn.prune.loop import BatchStream

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ckpt = load_checkpoint(args.checkpoint)
    cfg = config_from_checkpoint(args.checkpoint)
    data = load_data(cfg, ckpt.meta.get("normalization"))
    stream = BatchStream(BatchLoader(data.train, args.batch_size, shuffle=True,
                                     seed=args.seed, drop_last=True))
    net = torch_twin(ckpt.model)
    classifier = [m for m in net if isinstance(m, torch.nn.Linear)][-1]
    example = torch.zeros((1,) + tuple(ckpt.model.input_shape))
    pruner = tp.pruner.MetaPruner(net, example, importance=tp.importance.TaylorImportance(),
                                  global_pruning=True, pruning_ratio=1.0 - args.keep,
                                  iterative_steps=args.steps, ignored_layers=[classifier])
    lossf = torch.nn.CrossEntropyLoss()

    def channels():
        convs = [m.out_channels for m in net if isinstance(m, torch.nn.Conv2d)]
        dense = [m.out_features for m in net if isinstance(m, torch.nn.Linear)][:-1]
        return sum(convs), sum(dense)

    def measure(step, removed):
        net.eval()
        cm = np.zeros((10, 10), np.int64)
        with torch.inference_mode():
            for s in range(0, len(data.test.y), 500):
                logits = net(torch.from_numpy(data.test.x[s:s + 500])).numpy()
                cm += confusion_matrix(data.test.y[s:s + 500], logits.argmax(1), 10)
            x1 = torch.from_numpy(data.test.x[:1])
            for _ in range(3):
                net(x1)
            times = []
            for _ in range(20):
                t0 = time.perf_counter()
                net(x1)
                times.append(time.perf_counter() - t0)
        net.train()
        rep = report_from_confusion(cm, data.test.classes)
        flops, params = tp.utils.count_ops_and_params(net, example)
        maps, units = channels()
        return {"step": step, "criterion": "torch-pruning taylor", "removed": removed,
                "maps": maps, "dense_units": units, "params": int(params),
                "mb": params * 4 / 1e6, "flops": int(2 * flops),
                "test_accuracy": rep["accuracy"], "test_macro_f1": rep["macro"]["f1"],
                "latency_b1_ms": float(np.median(times) * 1e3)}

    os.makedirs(args.out, exist_ok=True)
    out = open(os.path.join(args.out, "prune.jsonl"), "w")
    first = measure(0, 0)
    original = dict(first)
    out.write(json.dumps(first) + "\n")
    out.flush()
    opt = None
    for step in range(1, args.steps + 1):
        net.train()
        net.zero_grad()
        for _ in range(args.batches):
            xb, yb = stream.next()
            lossf(net(torch.from_numpy(xb)), torch.from_numpy(yb)).backward()
        before = sum(channels())
        pruner.step()
        net.zero_grad()
        opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                              weight_decay=5e-4)
        for _ in range(args.finetune):
            xb, yb = stream.next()
            opt.zero_grad()
            lossf(net(torch.from_numpy(xb)), torch.from_numpy(yb)).backward()
            opt.step()
        rec = measure(step, before - sum(channels()))
        for key in ("maps", "params", "flops"):
            rec[f"{key}_kept"] = rec[key] / original[key]
        out.write(json.dumps(rec) + "\n")
        out.flush()
        print(json.dumps(rec), flush=True)
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
