"""Per-bucket timeline from sitecustomize.py's dumps (issue #17, helper-T).

python timeline.py DIR [SPEC_SUBSTRING] [--steps]
Times in ms relative to fs (finish_step called = end of backward on this rank).
Per rank and compressor: median over the compressed overlap steps of
  each bucket's post; each qring hop's post (send) and advance (Testall saw it done);
  the op's completion; the small tensors' ring (last bucket) hops; finish_step's end;
  backward's layer hooks (group: time its grads were ready).
"""
import glob, json, statistics as st, sys
from collections import defaultdict

d = sys.argv[1]
want = sys.argv[2] if len(sys.argv) > 2 and not sys.argv[2].startswith("--") else ""
show_steps = "--steps" in sys.argv
files = sorted(glob.glob(f"{d}/rank*.json"))
allrank = {}
for f in files:
    data = json.load(open(f))
    meta, ev = data["meta"], data["ev"]
    steps, cur, run, last = [], None, 0, None
    for e in ev:
        if e[0] == "ss":
            if last is None or e[2] != last[2] or e[4] < last[4] or e[3] != last[3]:
                run += 1
            last = e
            spec = f"run{run} {e[2]} {e[6] if len(e) > 6 else ''}"
            cur = {"spec": spec, "mode": e[3], "n": e[4], "cx": e[5], "ev": []}
            steps.append(cur)
        elif cur is not None:
            cur["ev"].append(e)
    rows = defaultdict(lambda: defaultdict(list))
    for s in steps:
        if s["mode"] != "overlap" or not s["cx"] or want not in s["spec"]:
            continue
        E = s["ev"]
        fs = next((e[1] for e in E if e[0] == "fs"), None)
        fe = next((e[1] for e in E if e[0] == "fe"), None)
        if fs is None:
            continue
        R = lambda t: 1e3 * (t - fs)
        op_bucket, kind = {}, {}
        for e in E:
            if e[0] == "posted":
                for i, n in zip(e[3], e[4]):
                    op_bucket[i] = e[2]
                    kind[i] = n
        # ring ops created during bucket posts (the small tensors' allreduce)
        cur_post = None
        for e in E:
            if e[0] == "post":
                cur_post = e[2]
            elif e[0] == "posted":
                cur_post = None
            elif e[0] == "rnew" and cur_post is not None:
                op_bucket[e[2]] = cur_post
                kind[e[2]] = "ring%d" % e[3]
        r = rows[s["spec"]]
        r["fe"].append(R(fe))
        r["ss"].append(R(s_ss) if False else 0)
        for e in E:
            if e[0] == "post":
                r[f"b{e[2]} post"].append(R(e[1]))
            elif e[0] in ("qpost", "qadv") and e[2] in op_bucket:
                r[f"b{op_bucket[e[2]]} {e[0]}{e[3]}"].append(R(e[1]))
            elif e[0] == "radv" and e[2] in op_bucket:
                r[f"b{op_bucket[e[2]]} {kind[e[2]]} adv{e[3]}"].append(R(e[1]))
            elif e[0] == "done" and e[2] in op_bucket:
                r[f"b{op_bucket[e[2]]} {kind[e[2]]} done"].append(R(e[1]))
            elif e[0] == "g":
                r[f"layer{e[2]:02d} ready"].append(R(e[1]))
        polls = [R(e[1]) for e in E if e[0] == "g"]
        if show_steps:
            print(meta.get("rank"), s["spec"][:20], s["n"], "fe %.2f" % R(fe),
                  " ".join(f"{e[0]}{e[3] if len(e) > 3 and e[0][0] in 'qr' else ''}@{R(e[1]):.1f}"
                           for e in E if e[0] in ("post", "qpost", "qadv", "done", "radv")))
    for spec, r in rows.items():
        print(f"== rank {meta.get('rank')} {spec}  ({len(r['fe'])} steps; median ms rel. finish_step call)")
        for k in sorted(r, key=lambda k: st.median(r[k])):
            if k == "ss":
                continue
            print(f"   {k:32s} {st.median(r[k]):8.2f}   [{min(r[k]):.2f} .. {max(r[k]):.2f}]")
