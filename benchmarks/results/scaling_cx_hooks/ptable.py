# the exchange's groups per row and rank from psum.py's output (perf_*.txt): ms per step
# usage: ptable.py perf_X.txt ...
import re, sys
for path in sys.argv[1:]:
    for blk in open(path).read().split("== ")[1:]:
        head, rest = blk.split("\n", 1)
        m = re.match(r"(\S+) rank (\d): ([\d.]+) ms/step", head)
        d = dict((k.strip(), float(v)) for k, v in re.findall(r"([^,]+?) ([\d.]+)(?:,|$)", rest.split("\n")[0]))
        g = lambda f: sum(v for k, v in d.items() if f(k))
        print("%-12s %-38s r%s sampled %5.1f interpreter %.1f codec %.1f summable %.1f libc %.1f "
              "numpy %.1f kernel %.1f mpi %.1f" % (
                  path.split("/")[-1][5:-4], m.group(1)[:38], m.group(2), float(m.group(3)),
                  g(lambda k: k == "python"), g(lambda k: k.startswith("codec")),
                  g(lambda k: "_summable" in k), g(lambda k: k == "libc"), g(lambda k: k == "numpy"),
                  g(lambda k: k == "kernel"), g(lambda k: k in ("libmpi", "libfabric", "mpi4py"))))
