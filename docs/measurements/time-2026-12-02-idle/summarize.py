#!/usr/bin/env python3
"""summarize.py DIR: per layout, each rep's measured / predicted step and the medians."""
import csv, glob, os, statistics, sys
d = sys.argv[1]
rows = {}
# A run's OUT (repN/sweep/scaling.csv) or the copy kept in the repository (repN/scaling.csv).
for f in sorted(glob.glob(os.path.join(d, "rep*", "sweep", "scaling.csv")) + glob.glob(os.path.join(d, "rep*", "scaling.csv"))):
    rep = os.path.relpath(f, d).split(os.sep)[0]
    for r in csv.DictReader(open(f)):
        if r["status"] != "ok":
            continue
        key = (int(r["np"]), r["layout"], int(r["threads"]), r["oversubscribed"])
        rows.setdefault(key, []).append((rep, float(r["t_step"]), float(r["pred_t_step"])))
print("| np | layout | threads/rank | measured ms, each rep | predicted ms, each rep | error each rep | median measured | median predicted | error of medians |")
print("|---|---|---|---|---|---|---|---|---|")
for (np_, lay, th, ov), v in sorted(rows.items()):
    m = [x[1] for x in v]; p = [x[2] for x in v]
    errs = " ".join(f"{100*(a/b-1):+.0f}" for _, a, b in v)
    mm, pm = statistics.median(m), statistics.median(p)
    print(f"| {np_}{' (oversubscribed)' if ov=='1' else ''} | {lay} | {th} | {' '.join(f'{1e3*x:.0f}' for x in m)} | {' '.join(f'{1e3*x:.0f}' for x in p)} | {errs} % | {1e3*mm:.0f} | {1e3*pm:.0f} | {100*(mm/pm-1):+.1f} % |")
