"""Why a recipe collapses: per-layer scales during the first training steps.

    python benchmarks/recipes_probe.py --init dtnn --steps 60 --out /tmp/probe.jsonl
    python benchmarks/recipes_probe.py --init torch ...   # torch's default nn init, same model

For one model, dataset and optimizer setting, runs ``--steps`` SGD steps and records,
at every step: the batch loss, each parameterised layer's output RMS (forward), the
norm of its weight gradient, and the relative size of its weight update
(||dW|| / ||W||); plus the fraction of dead hidden units (ReLU outputs that are zero for
the whole batch).  ``--init torch`` replaces every Conv2D/Dense weight and bias by those
of a freshly made ``torch.nn.Conv2d`` / ``torch.nn.Linear`` (kaiming-uniform with
a = sqrt(5), i.e. U(+-1/sqrt(fan_in)) for weights and biases).
"""
from __future__ import annotations

import dtnn  # noqa: F401  (before numpy: thread settings)

import argparse
import json
import sys

import numpy as np

from dtnn.config import load_config
from dtnn.engine.session import load_data, make_optimizer, make_schedule
from dtnn.layers import Conv2D, Dense, ReLU
from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.models import build_model
from dtnn.data import BatchLoader, Augment


def torch_init(model, seed: int) -> None:
    import torch
    torch.manual_seed(seed)
    for layer in model.layers:
        if isinstance(layer, Conv2D):
            K, Cg, R, S = layer.params["weight"].shape
            m = torch.nn.Conv2d(Cg * layer.groups, K, (R, S), groups=layer.groups,
                                bias=layer.use_bias)
            layer.params["weight"][...] = m.weight.detach().numpy()
            if layer.use_bias:
                layer.params["bias"][...] = m.bias.detach().numpy()
        elif isinstance(layer, Dense):
            F, U = layer.params["weight"].shape
            m = torch.nn.Linear(F, U, bias=layer.use_bias)
            layer.params["weight"][...] = m.weight.detach().numpy().T
            if layer.use_bias:
                layer.params["bias"][...] = m.bias.detach().numpy()


def rms(a) -> float:
    return float(np.sqrt(np.mean(np.square(a, dtype=np.float64))))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-c", "--config", default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--init", choices=("dtnn", "torch"), default="dtnn")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--clip", type=float, default=0.0, help="clip the global gradient norm")
    p.add_argument("--out", default="-")
    args = p.parse_args()
    cfg = load_config(args.config, args.overrides)
    data = load_data(cfg)
    opts = dict(cfg.model.options)
    opts.setdefault("conv_algorithm", cfg.model.conv_algorithm)
    model = build_model(cfg.model.name, data.train.x.shape[1:], len(data.train.classes),
                        seed=cfg.train.seed, **opts)
    if args.init == "torch":
        torch_init(model, cfg.train.seed)
    augment = (Augment(shift=cfg.data.augment_shift, flip=cfg.data.augment_flip,
                       seed=cfg.train.seed) if cfg.data.augment_shift else None)
    batch = cfg.train.global_batch_size or cfg.train.batch_size
    loader = BatchLoader(data.train, batch, seed=cfg.train.seed, augment=augment)
    opt = make_optimizer(cfg, model)
    sched = make_schedule(cfg, loader.steps_per_epoch)
    loss_fn = SoftmaxCrossEntropy()
    out = sys.stdout if args.out == "-" else open(args.out, "w")
    step = 0
    epoch = 0
    while step < args.steps:
        for xb, yb in loader.epoch(epoch):
            if step >= args.steps:
                break
            acts = []
            x = xb
            for layer in model.layers:
                x = layer.forward(x, True)
                if layer.params:
                    acts.append((layer.name, rms(x)))
                if isinstance(layer, ReLU) and x.ndim == 2:
                    dead = float(np.mean(~(x > 0).any(axis=0)))
                    acts.append((layer.name + ":dead", dead))
            loss = loss_fn.forward(x, yb)
            model.backward(loss_fn.backward())
            gnorm = float(np.linalg.norm(model.flat_grads))
            if args.clip and gnorm > args.clip:
                model.flat_grads *= np.float32(args.clip / gnorm)
            before = {l.name: l.params["weight"].copy() for l in model.layers
                      if "weight" in l.params}
            opt.lr = sched.lr_at(step)
            opt.step()
            rec = {"init": args.init, "step": step, "lr": opt.lr, "loss": loss,
                   "grad_norm": gnorm, "logit_rms": rms(x),
                   "layers": {}}
            for name, value in acts:
                rec["layers"].setdefault(name.split(":")[0] + (":dead" if name.endswith(
                    ":dead") else ""), {})["out_rms" if not name.endswith(":dead")
                                           else "dead_units"] = value
            for l in model.layers:
                if "weight" in l.params:
                    w0 = before[l.name]
                    rec["layers"].setdefault(l.name, {}).update(
                        w_rms=rms(w0), grad_norm=float(np.linalg.norm(l.grads["weight"])),
                        update_ratio=float(np.linalg.norm(l.params["weight"] - w0)
                                           / max(np.linalg.norm(w0), 1e-12)))
            out.write(json.dumps(rec) + "\n")
            out.flush()
            step += 1
        epoch += 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
