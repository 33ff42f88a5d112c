"""Summarise training runs as a markdown table (from each run directory's outputs).

    python benchmarks/summarize_runs.py runs/simplecnn runs/vgg11_bn
"""
import json
import os
import sys


def summarize(run_dir: str) -> str:
    with open(os.path.join(run_dir, "metrics.jsonl")) as fh:
        records = [r for r in (json.loads(line) for line in fh if line.strip())
                   if r.get("event") != "eval"]
    with open(os.path.join(run_dir, "report.json")) as fh:
        report = json.load(fh)
    seconds = [r["epoch_seconds"] for r in records]
    best = max(r.get("eval_accuracy", 0.0) for r in records)
    return (f"| {run_dir} | {records[-1]['epoch']} | {report['accuracy']:.4f} | "
            f"{report['macro']['f1']:.4f} | {best:.4f} | {sum(seconds) / len(seconds):.1f} | "
            f"{records[-1]['processes']} |")


if __name__ == "__main__":
    print("| run | epochs | final test accuracy | macro F1 | best epoch accuracy | "
          "s/epoch | processes |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path in sys.argv[1:]:
        print(summarize(path))
