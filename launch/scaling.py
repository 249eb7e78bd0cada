#!/usr/bin/env python3
"""launch/scaling.py — a measured scaling sweep of loom-train through mpirun, with a report.

    launch/scaling.py --output DIR [--nps 1,2,4] [--mode strong|weak|both] [--layouts ...]
                      [--cluster FILE | --cluster 1=FILE1,2=FILE2] [--steps N] [--model "..."]
    launch/scaling.py --output DIR --from-csv DIR/scaling.csv      # redraw a recorded sweep

For every world size np and every layout dp x tp x pp = np (default: all of them; --layouts
dp2,tp2,dp2pp2,... restricts), runs loom-train for --steps steps: strong scaling keeps the
global batch (--global-batch), weak scaling gives every rank the same batch (global batch =
--global-batch x np). Each rank gets OMP_NUM_THREADS = cores / np (1 when np > cores: the run
is oversubscribed, and the report keeps those rows apart). With --cluster, each run also gets
loom-train --plan.cluster, whose prediction.json gives the predicted step time and split next
to the measured ones (FILE for all runs, or THREADS=FILE per OpenMP thread count, since a
CPU cluster file is calibrated with the threads one rank will have; see docs/scaling.md).

Measured step = the median step after the first (warm-up) in the run's metrics.jsonl, with
that step's split: compute, tp, pp (bubble and pipeline waits), dp (exposed). Writes
DIR/scaling.csv, DIR/scaling.md, DIR/throughput.png, DIR/efficiency.png (throughput over
np x the 1-rank throughput), DIR/time_split.png (stacked measured split per layout, predicted
step marked), and keeps each run's directory under DIR/runs/. One progress line per run.

`loom-bench scaling [options]` runs this script with that build's directory as --build-dir.
The sweep is a script, not C++ inside loom-bench: it starts mpirun jobs (loom-bench's other
subcommands run inside one), the plots need matplotlib, and the predictions come from
loom-train --plan.cluster itself (plan/ is not re-implemented here).
"""
import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIELDS = ["mode", "np", "dp", "tp", "pp", "layout", "threads", "oversubscribed", "global_batch", "steps",
          "status", "t_step", "tokens_per_s", "mfu", "t_compute", "t_tp", "t_pp", "t_dp", "peak_rss_mib",
          "cluster", "pred_t_step", "pred_tokens_per_s", "pred_mfu", "pred_t_compute", "pred_t_tp",
          "pred_t_pp", "pred_t_dp", "pred_memory_mib", "error", "memory_error"]
SPLIT = [("t_compute", "compute"), ("t_tp", "tp"), ("t_pp", "pp"), ("t_dp", "dp")]


def layouts_of(np_, wanted):
    """(dp, tp, pp) with dp tp pp = np_, in a fixed order; `wanted` filters by name (dp2tp2...)."""
    out = []
    for tp in range(1, np_ + 1):
        for pp in range(1, np_ + 1):
            if np_ % (tp * pp) == 0:
                lay = (np_ // (tp * pp), tp, pp)
                if wanted is None or layout_name(lay) in wanted or (np_ == 1 and "dp1" in wanted):
                    out.append(lay)
    return sorted(out, key=lambda l: (-l[0], -l[1]))


def layout_name(lay):
    dp, tp, pp = lay
    name = "".join(f"{k}{v}" for k, v in (("dp", dp), ("tp", tp), ("pp", pp)) if v > 1)
    return name or "dp1"


def cluster_for(spec, threads):
    if not spec:
        return None
    if "=" not in spec:
        return spec
    files = dict(item.split("=", 1) for item in spec.split(","))
    return files.get(str(threads))


def measured(run_dir):
    recs = []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        recs = [json.loads(l) for l in f if l.strip()]
    after = recs[1:] if len(recs) > 1 else recs
    after = sorted(after, key=lambda r: r["t_step"])
    return after[(len(after) - 1) // 2]


def run_one(a, mode, lay, threads, global_batch, run_dir, env):
    dp, tp, pp = lay
    np_ = dp * tp * pp
    cmd = [a.mpirun, "--oversubscribe", "--bind-to", "none", "-np", str(np_), "-x", f"OMP_NUM_THREADS={threads}",
           os.path.join(a.build_dir, "launch", "loom-train"), "--data.train", a.data] + a.model.split() + [
           "--train.global_batch", str(global_batch), "--train.steps", str(a.steps),
           "--train.eval_interval", "0", "--train.eval_batches", "1", "--train.log_interval", "1",
           "--checkpoint.dir", run_dir, "--checkpoint.overwrite",
           "--parallel.dp", str(dp), "--parallel.tp", str(tp), "--parallel.pp", str(pp)]
    cluster = cluster_for(a.cluster, threads)
    if cluster:
        cmd += ["--plan.cluster", cluster]
    row = dict(mode=mode, np=np_, dp=dp, tp=tp, pp=pp, layout=layout_name(lay), threads=threads,
               oversubscribed=int(np_ > a.cores), global_batch=global_batch, steps=a.steps,
               cluster=os.path.basename(cluster) if cluster else "")
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with open(run_dir + ".log", "w") as f:
        f.write(" ".join(cmd) + "\n" + p.stdout)
    if p.returncode != 0:
        errors = [l for l in p.stdout.splitlines() if "error" in l.lower()]
        row["status"] = "failed: " + (errors[0] if errors else f"exit code {p.returncode}").replace(",", ";")[:160]
        return row
    m = measured(run_dir)
    row.update(status="ok", t_step=m["t_step"], tokens_per_s=m["tokens_per_s"], mfu=m["mfu"],
               **{k: m[k] for k, _ in SPLIT})
    rss = re.search(r"measured peak RSS ([0-9.]+) MiB", p.stdout)
    if rss:
        row["peak_rss_mib"] = float(rss.group(1))
    pred_path = os.path.join(run_dir, "prediction.json")
    if cluster and os.path.isfile(pred_path):
        with open(pred_path) as f:
            pr = json.load(f)
        # Rank 0's memory: the rank whose peak RSS loom-train prints (pipeline stage 0).
        mem = pr.get("memory_rank0_bytes", pr["memory_bytes"])
        row.update(pred_t_step=pr["t_step"], pred_tokens_per_s=pr["tokens_per_s"], pred_mfu=pr["mfu"],
                   pred_memory_mib=mem / 2**20, **{"pred_" + k: pr[k] for k, _ in SPLIT})
        row["error"] = m["t_step"] / pr["t_step"] - 1
        if "peak_rss_mib" in row and mem > 0:
            row["memory_error"] = row["peak_rss_mib"] / (mem / 2**20) - 1
    return row


def fmt_ms(v):
    return f"{1e3 * float(v):.0f}" if v not in ("", None) else ""


def write_markdown(rows, path):
    def table(sel):
        lines = ["| mode | np | layout | threads/rank | global batch | step ms | tokens/s | MFU % | compute / tp / pp / dp ms"
                 " | predicted step ms | error | peak RSS MiB | predicted MiB | memory error |", "|" + "---|" * 14]
        for r in sel:
            if r["status"] != "ok":
                lines.append(f"| {r['mode']} | {r['np']} | {r['layout']} | {r['threads']} | {r['global_batch']} | "
                             f"{r['status']} ||||||||| ")
                continue
            err = f"{100 * float(r['error']):+.1f} %" if r.get("error") not in ("", None) else ""
            merr = f"{100 * float(r['memory_error']):+.1f} %" if r.get("memory_error") not in ("", None) else ""
            rss = f"{float(r['peak_rss_mib']):.0f}" if r.get("peak_rss_mib") not in ("", None) else ""
            pmem = f"{float(r['pred_memory_mib']):.0f}" if r.get("pred_memory_mib") not in ("", None) else ""
            lines.append(
                f"| {r['mode']} | {r['np']} | {r['layout']} | {r['threads']} | {r['global_batch']} | {fmt_ms(r['t_step'])} | "
                f"{float(r['tokens_per_s']):.0f} | {100 * float(r['mfu']):.1f} | "
                + " / ".join(fmt_ms(r[k]) for k, _ in SPLIT)
                + f" | {fmt_ms(r.get('pred_t_step'))} | {err} | {rss} | {pmem} | {merr} |")
        return lines

    normal = [r for r in rows if int(r["oversubscribed"]) == 0]
    over = [r for r in rows if int(r["oversubscribed"]) == 1]
    out = ["# loom scaling sweep", "",
           "Measured: the median step after the first; split = that step's compute / tp / pp (bubble and waits) "
           "/ dp (exposed). error = measured / predicted step time - 1; memory error = rank 0's measured peak RSS / "
           "its predicted memory - 1.", ""]
    out += table(normal)
    if over:
        out += ["", "## Oversubscribed (more ranks than cores)", ""] + table(over)
    errs = [abs(float(r["error"])) for r in normal if r["status"] == "ok" and r.get("error") not in ("", None)]
    if errs:
        out += ["", f"Prediction error (not oversubscribed): mean |error| {100 * statistics.mean(errs):.1f} %, "
                    f"worst {100 * max(errs):.1f} %, {sum(e <= 0.15 for e in errs)} of {len(errs)} within 15 %."]
    merrs = [abs(float(r["memory_error"])) for r in rows if r["status"] == "ok" and r.get("memory_error") not in ("", None)]
    if merrs:
        out += ["", f"Memory prediction error (all runs): mean |error| {100 * statistics.mean(merrs):.1f} %, "
                    f"worst {100 * max(merrs):.1f} %, {sum(e <= 0.10 for e in merrs)} of {len(merrs)} within 10 %."]
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def write_plots(rows, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ok = [r for r in rows if r["status"] == "ok"]
    files = []
    modes = sorted({r["mode"] for r in ok})
    # Throughput and efficiency vs ranks: one line per (mode, layout family: dp, tp, pp or mixed), its best layout at each np.
    for name, ylabel, value in (
            ("throughput.png", "tokens/s", lambda r, base: float(r["tokens_per_s"])),
            ("efficiency.png", "efficiency: tokens/s / (np x 1-rank tokens/s)",
             lambda r, base: float(r["tokens_per_s"]) / (int(r["np"]) * base) if base else 0.0)):
        fig, ax = plt.subplots(figsize=(6, 4), dpi=80)
        for mode in modes:
            sel = [r for r in ok if r["mode"] == mode]
            base = next((float(r["tokens_per_s"]) for r in sel if int(r["np"]) == 1), None)
            for kind in ("dp", "tp", "pp", "mixed"):
                best = {}  # the best layout of this family at each np (mixed has several)
                for r in sel:
                    if int(r["np"]) == 1 or family(r) == kind:
                        best[int(r["np"])] = max(best.get(int(r["np"]), 0.0), value(r, base))
                pts = sorted(best.items())
                if len(pts) > 1:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-" if mode == "strong" else "s--",
                            label=f"{mode} {kind}")
        ax.set_xlabel("ranks (np)")
        ax.set_ylabel(ylabel)
        ax.set_xticks(sorted({int(r["np"]) for r in ok}) or [1])
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        ax.set_title(ylabel.split(":")[0] + " vs ranks")
        fig.tight_layout()
        fig.savefig(os.path.join(out, name))
        plt.close(fig)
        files.append(os.path.join(out, name))
    # Stacked measured split per run, predicted step time as a marker.
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(ok) + 2), 4), dpi=80)
    labels = [f"{r['mode'][0]} {r['layout']}" for r in ok]
    bottom = [0.0] * len(ok)
    for key, label in SPLIT:
        h = [1e3 * float(r[key]) for r in ok]
        ax.bar(range(len(ok)), h, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, h)]
    pred = [(i, 1e3 * float(r["pred_t_step"])) for i, r in enumerate(ok) if r.get("pred_t_step") not in ("", None)]
    if pred:
        ax.plot([p[0] for p in pred], [p[1] for p in pred], "k_", markersize=20, markeredgewidth=2,
                label="predicted step")
    ax.set_xticks(range(len(ok)))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize="small")
    ax.set_ylabel("ms per step")
    ax.set_title("time split per layout (s = strong, w = weak)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "time_split.png"))
    plt.close(fig)
    files.append(os.path.join(out, "time_split.png"))
    return files


def family(r):
    kinds = [k for k in ("dp", "tp", "pp") if int(r[k]) > 1]
    return kinds[0] if len(kinds) == 1 else "mixed"


def write_report(rows, out):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "scaling.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in FIELDS})
    write_markdown(rows, os.path.join(out, "scaling.md"))
    files = [os.path.join(out, "scaling.csv"), os.path.join(out, "scaling.md")] + write_plots(rows, out)
    print("report:\n" + "\n".join("  " + f for f in files))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--output", required=True, help="report directory (created)")
    ap.add_argument("--from-csv", help="redraw the report of a recorded sweep's scaling.csv; runs nothing")
    ap.add_argument("--build-dir", default=os.environ.get("BUILD_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--data", default=os.path.join(ROOT, "runs/quickstart/kjv.h5"),
                    help="token dataset (default runs/quickstart/kjv.h5, made by launch/scaling.sh or quickstart.sh)")
    ap.add_argument("--model", default="--model.layers 4 --model.channels 256 --model.heads 8 --model.seq_len 128 "
                                       "--train.micro_batch 4", help="loom-train model and batch options")
    ap.add_argument("--global-batch", type=int, default=16, help="strong: per step; weak: per step at np 1")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--nps", default="1,2,4", help="world sizes")
    ap.add_argument("--mode", choices=["strong", "weak", "both"], default="strong")
    ap.add_argument("--layouts", help="comma-separated names to run (dp1, dp2, tp2, pp2, dp2tp2, tp2pp2, ...)")
    ap.add_argument("--cluster", help="cluster file for loom-train --plan.cluster, or THREADS=FILE,... per thread count")
    ap.add_argument("--cores", type=int, default=os.cpu_count(), help="cores shared by the ranks")
    ap.add_argument("--mpirun", default="mpirun")
    a = ap.parse_args(argv)
    try:  # before any run, not after the sweep
        import matplotlib  # noqa: F401
    except ImportError as e:
        sys.exit(f"scaling.py: {e}; HINT: python3 -m pip install matplotlib")
    if a.from_csv:
        with open(a.from_csv) as f:
            write_report(list(csv.DictReader(f)), a.output)
        return 0
    if not os.path.isfile(a.data):
        sys.exit(f"scaling.py: no dataset {a.data}; HINT: make one with loom-data --input FILE --output {a.data} "
                 "(launch/scaling.sh makes the default), or give --data")
    env = dict(os.environ)
    if os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    wanted = set(a.layouts.split(",")) if a.layouts else None
    plan = []
    for mode in (["strong", "weak"] if a.mode == "both" else [a.mode]):
        for np_ in (int(n) for n in a.nps.split(",")):
            for lay in layouts_of(np_, wanted):
                plan.append((mode, lay, a.global_batch * (np_ if mode == "weak" else 1)))
    os.makedirs(os.path.join(a.output, "runs"), exist_ok=True)
    rows, done = [], {}
    for i, (mode, lay, gb) in enumerate(plan, 1):
        np_ = lay[0] * lay[1] * lay[2]
        threads = max(1, a.cores // np_)
        key = (lay, gb)
        t0 = time.time()
        if key in done:  # np 1 is the same run in both modes
            row = dict(done[key], mode=mode)
        else:
            run_dir = os.path.abspath(os.path.join(a.output, "runs", f"{mode}-np{np_}-{layout_name(lay)}"))
            row = run_one(a, mode, lay, threads, gb, run_dir, env)
            done[key] = row
        rows.append(row)
        msg = row["status"]
        if row["status"] == "ok":
            msg = (f"{1e3 * row['t_step']:.0f} ms/step, {row['tokens_per_s']:.0f} tok/s, MFU {100 * row['mfu']:.1f}%, "
                   f"split " + "/".join(f"{1e3 * row[k]:.0f}" for k, _ in SPLIT) + " ms")
            if row.get("pred_t_step"):
                msg += f"; predicted {1e3 * row['pred_t_step']:.0f} ms ({100 * row['error']:+.1f}%)"
        print(f"[{i}/{len(plan)}] {mode} np {np_} {layout_name(lay)} ({threads} thread(s)/rank, global batch {gb}, "
              f"{time.time() - t0:.0f} s): {msg}", flush=True)
    write_report(rows, a.output)
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
