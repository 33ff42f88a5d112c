# summarise trace_N.json: per spec, per rank medians: step, backward end (last hook), poll count/time, adv time, wait time, post time
import gzip, json, sys, numpy as np
d = json.load((gzip.open if sys.argv[1].endswith(".gz") else open)(sys.argv[1], "rt"))
for spec in d[0]:
    for r, rr in enumerate(d):
        st = rr[spec]["steps"]
        agg = {k: [] for k in ("step", "bwd_end", "polls", "poll_ms", "adv_ms", "post_ms", "wait_ms", "hook_ms", "nadv_in_wait")}
        for s in st:
            ev = s; t = dict()
            open_ = {}
            dur = {"poll": 0.0, "adv": 0.0, "post": 0.0, "wait": 0.0, "hook": 0.0, "codec": 0.0, "fin": 0.0}
            npoll = 0; nw = 0; inwait = False
            for n, tt in ev:
                base = n.split(">")[0].split("<")[0]
                if ">" in n:
                    open_[base] = tt
                    if base == "poll": npoll += 1
                    if base == "wait": inwait = True
                    if base == "adv" and inwait: nw += 1
                elif n.endswith("<") and base in open_:
                    dur[base] += tt - open_.pop(base)
            hooks = [tt for n, tt in ev if n.startswith("hook>")]
            agg["step"].append(ev[-1][1]); agg["bwd_end"].append(hooks[-1] if hooks else 0)
            agg["polls"].append(npoll); agg["nadv_in_wait"].append(nw)
            for k in ("poll", "adv", "post", "wait", "hook"): agg[k + "_ms"].append(dur[k])
        print(spec[:40].ljust(40), "r%d" % r, " ".join("%s %.2f" % (k, np.median(v) * (1e3 if k not in ("polls", "nadv_in_wait") else 1)) for k, v in agg.items()), "codec %.2f" % rr[spec]["codec_ms"])
# codec split by enclosing phase (post / adv-in-poll / wait), and non-codec time of post and poll
print("split: per spec, rank: post total / codec in post | poll total / codec in poll (excl. wait) | wait total / codec in wait | codec outside")
for spec in d[0]:
    for r, rr in enumerate(d):
        acc = []
        for s in rr[spec]["steps"]:
            stack = []; tot = {}; cod = {}
            cs = None
            for n, tt in s:
                base = n.split(">")[0].split("<")[0]
                if base in ("post", "poll", "wait"):
                    if ">" in n: stack.append((base, tt))
                    elif stack and stack[-1][0] == base:
                        b, t0 = stack.pop(); tot[b] = tot.get(b, 0) + tt - t0
                elif base == "codec":
                    if ">" in n: cs = tt
                    elif cs is not None:
                        where = stack[-1][0] if stack else "other"
                        cod[where] = cod.get(where, 0) + tt - cs; cs = None
            acc.append([tot.get("post", 0), cod.get("post", 0), tot.get("poll", 0), cod.get("poll", 0), tot.get("wait", 0), cod.get("wait", 0), cod.get("other", 0)])
        if any(a[1] for a in acc):
            print(spec[:40].ljust(40), r, " ".join("%.2f" % (1e3*v) for v in np.median(np.array(acc), 0)))
