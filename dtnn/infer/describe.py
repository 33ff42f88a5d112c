"""A readable listing of a fused plan (``InferenceModel.describe``)."""
from __future__ import annotations

from typing import Dict, List

from dtnn.infer.steps import (AffineStep, BlockStep, ConvStep, LayerStep, PoolStep,
                              ReshapeStep)

_ACT_NAMES = {0: "", 1: "relu", 2: "relu6", 3: "prelu"}


def _line(step, choices: Dict[str, str]) -> str:
    if isinstance(step, ConvStep):
        what = "dense" if step.dense else "conv %dx%d/%d" % (step.w.shape[2], step.w.shape[3],
                                                              step.stride[0])
        folded = "+".join(n.split(":")[-1] for n in step.fused)
        return (f"{step.name}: {what} {step.in_shape}->{step.out_shape}"
                + (f" +{folded}" if folded else "") + f" [{choices.get(step.name, '?')}]")
    if isinstance(step, AffineStep):
        parts = (["scale/shift"] if step.scale is not None else []) + (
            [_ACT_NAMES[step.act]] if step.act else [])
        return f"{step.name}: {' '.join(parts)} {step.shape}"
    if isinstance(step, PoolStep):
        return f"{step.name}: maxpool {step.in_shape}->{step.out_shape}"
    if isinstance(step, ReshapeStep):
        return f"{step.name}: view as {step.out_shape}"
    if isinstance(step, LayerStep):
        return f"{step.name}: layer forward -> {step.out_shape}"
    return f"{step.name}: {'concat' if step.concat else 'add'} of {len(step.branches)} branches"


def describe(steps: list, choices: Dict[str, str], indent: str = "") -> str:
    lines: List[str] = []
    for step in steps:
        lines.append(indent + _line(step, choices))
        if isinstance(step, BlockStep):
            for b, branch in enumerate(step.branches):
                lines.append(f"{indent}  branch {b}:" + ("" if branch else " identity"))
                if branch:
                    lines.append(describe(branch, choices, indent + "    "))
    return "\n".join(lines)
