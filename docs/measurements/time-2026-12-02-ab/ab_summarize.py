#!/usr/bin/env python3
"""ab_summarize.py OUT: per layout and repetition, measured step vs the old and the new calibration's prediction."""
import csv, glob, os, statistics, sys
names = {("1", "1", "1"): "dp1", ("2", "1", "1"): "dp2", ("1", "2", "1"): "tp2", ("1", "1", "2"): "pp2"}
rows = {}
for d in sorted(glob.glob(os.path.join(sys.argv[1], "rep*"))):
    old, new = {}, {}
    for line in open(os.path.join(d, "predictions.txt")):
        lay, which, t = line.split()
        (old if which == "old" else new)[names[(lay[2], lay[5], lay[8])]] = float(t)
    csv_path = os.path.join(d, "sweep", "scaling.csv")  # a run's OUT, or the copy kept in the repository
    for r in csv.DictReader(open(csv_path if os.path.exists(csv_path) else os.path.join(d, "scaling.csv"))):
        if r["status"] == "ok" and r["layout"] in old:
            # loom-train's own prediction (the sweep's) must be loom-plan predict's for the same file.
            assert abs(float(r["pred_t_step"]) / new[r["layout"]] - 1) < 2e-3, (d, r["layout"])
            rows.setdefault(r["layout"], []).append((float(r["t_step"]), old[r["layout"]], new[r["layout"]]))
print("| layout | measured ms, each rep | old calibration: error each rep | new calibration: error each rep | median error old | median error new |")
print("|---|---|---|---|---|---|")
for lay in ["dp1", "dp2", "tp2", "pp2"]:
    v = rows.get(lay, [])
    eo = [100 * (m / o - 1) for m, o, _ in v]; en = [100 * (m / n - 1) for m, _, n in v]
    print(f"| {lay} | {' '.join(f'{1e3*m:.0f}' for m, _, _ in v)} | {' '.join(f'{e:+.0f}' for e in eo)} % | "
          f"{' '.join(f'{e:+.0f}' for e in en)} % | {statistics.median(eo):+.1f} % | {statistics.median(en):+.1f} % |")
