"""Decisions that differ between the simulated hosts' cache files: python cachediff.py DIR"""
import glob, json, sys
files = sorted(glob.glob(f"{sys.argv[1]}/h*-*.json"))
data = [json.load(open(f)) for f in files]
keys = sorted(set().union(*data))
diff = [k for k in keys if len({d.get(k, {}).get("winner") for d in data}) > 1]
print(f"{sys.argv[1]}: {len(keys)} decisions, {len(diff)} differ between "
      f"{', '.join(f.rsplit('/', 1)[1] for f in files)}")
for k in diff:
    print("  ", k, [d.get(k, {}).get("winner") for d in data])
