#!/usr/bin/env python3
"""launch/report.py — plots of one loom-train run from its metrics.jsonl.

    launch/report.py RUN_DIR [--output DIR] [--tensorboard [DIR]]

RUN_DIR is a run directory (checkpoint.dir, holding metrics.jsonl, and prediction.json when
the run had --plan.cluster) or a metrics.jsonl file. Writes PNGs (matplotlib) to --output
(default RUN_DIR/report): loss.png (train and val loss), lr.png, grad_norm.png,
tokens_per_s.png, mfu.png, time_split.png (compute / tp / pp / dp per step, stacked, with the
predicted step time when there is one). --tensorboard also writes TensorBoard event files
with tensorboardX's SummaryWriter (default directory RUN_DIR/tensorboard); view them with
`tensorboard --logdir RUN_DIR/tensorboard`. Needs matplotlib (and tensorboardX for
--tensorboard): python3 -m pip install matplotlib tensorboardX.
"""
import argparse
import json
import os
import sys

# metrics.jsonl fields (launch/trainer.cpp) -> TensorBoard tags.
SCALARS = [("loss", "train/loss"), ("val_loss", "val/loss"), ("lr", "train/lr"),
           ("grad_norm", "train/grad_norm"), ("tokens_per_s", "throughput/tokens_per_s"),
           ("tflops", "throughput/tflops_per_rank"), ("mfu", "throughput/mfu"),
           ("loss_scale", "train/loss_scale"), ("t_step", "time/step_s"),
           ("t_compute", "time/compute_s"), ("t_tp", "time/tp_s"), ("t_pp", "time/pp_s"),
           ("t_dp", "time/dp_s"), ("t_eval", "time/eval_s")]
SPLIT = [("t_compute", "compute"), ("t_tp", "tp"), ("t_pp", "pp (bubble + p2p)"), ("t_dp", "dp")]


def read_metrics(path):
    """The records of metrics.jsonl, in step order; a resumed run's repeated steps keep the last."""
    by_step = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"report.py: {path}:{n}: not JSON ({e}); HINT: is this a loom metrics.jsonl?")
            if "step" not in rec:
                sys.exit(f"report.py: {path}:{n}: no 'step' field; HINT: is this a loom metrics.jsonl?")
            by_step[rec["step"]] = rec
    if not by_step:
        sys.exit(f"report.py: {path} holds no records; HINT: the run has not finished a step yet")
    return [by_step[s] for s in sorted(by_step)]


def series(records, key):
    pts = [(r["step"] + 1, r[key]) for r in records if key in r and r[key] is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_line(plt, path, title, ylabel, curves, logy=False, hline=None):
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=80)
    for label, (x, y), style in curves:
        if x:
            ax.plot(x, y, style, label=label)
    if hline is not None:
        ax.axhline(hline[1], linestyle="--", color="gray", label=hline[0])
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if len(curves) > 1 or hline is not None:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_plots(records, prediction, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(out, exist_ok=True)
    pred = lambda key: (f"predicted ({prediction['cluster']})", prediction[key]) if prediction else None
    files = []

    def emit(name, *args, **kw):
        path = os.path.join(out, name)
        plot_line(plt, path, *args, **kw)
        files.append(path)

    emit("loss.png", "loss", "nats per token",
         [("train", series(records, "loss"), "-"), ("val", series(records, "val_loss"), "o-")])
    emit("lr.png", "learning rate", "lr", [("lr", series(records, "lr"), "-")])
    emit("grad_norm.png", "gradient norm (before clipping)", "norm", [("grad norm", series(records, "grad_norm"), "-")])
    emit("tokens_per_s.png", "throughput", "tokens/s", [("measured", series(records, "tokens_per_s"), "-")],
         hline=pred("tokens_per_s"))
    x, y = series(records, "mfu")
    emit("mfu.png", "MFU (per rank, of the gemm peak loom-train measured)", "%", [("measured", (x, [100 * v for v in y]), "-")],
         hline=(pred("mfu")[0], 100 * prediction["mfu"]) if prediction else None)

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=80)
    steps = [r["step"] + 1 for r in records]
    bottom = [0.0] * len(records)
    for key, label in SPLIT:
        h = [1e3 * r.get(key, 0.0) for r in records]
        ax.bar(steps, h, bottom=bottom, label=label, width=0.8)
        bottom = [b + v for b, v in zip(bottom, h)]
    if prediction:
        ax.axhline(1e3 * prediction["t_step"], linestyle="--", color="black", label=pred("t_step")[0] + " step")
    ax.set_xlabel("step")
    ax.set_ylabel("ms")
    ax.set_title("time split per step")
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = os.path.join(out, "time_split.png")
    fig.savefig(path)
    plt.close(fig)
    files.append(path)
    return files


def write_tensorboard(records, prediction, logdir):
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        sys.exit("report.py: --tensorboard needs tensorboardX; HINT: python3 -m pip install tensorboardX")
    w = SummaryWriter(logdir=logdir)
    for r in records:
        step = r["step"] + 1
        for key, tag in SCALARS:
            if key in r and isinstance(r[key], (int, float)) and not isinstance(r[key], bool):
                w.add_scalar(tag, r[key], step)
        if prediction:
            w.add_scalar("predicted/step_s", prediction["t_step"], step)
            w.add_scalar("predicted/tokens_per_s", prediction["tokens_per_s"], step)
    w.close()
    return sorted(os.path.join(logdir, f) for f in os.listdir(logdir) if f.startswith("events.out.tfevents"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="run directory (checkpoint.dir) or its metrics.jsonl")
    ap.add_argument("--output", help="directory of the PNGs (default RUN_DIR/report)")
    ap.add_argument("--tensorboard", nargs="?", const="", default=None, metavar="DIR",
                    help="also write TensorBoard event files (default DIR: RUN_DIR/tensorboard)")
    a = ap.parse_args(argv)
    if os.path.isdir(a.run):
        run_dir, metrics = a.run, os.path.join(a.run, "metrics.jsonl")
    else:
        run_dir, metrics = os.path.dirname(a.run) or ".", a.run
    if not os.path.isfile(metrics):
        sys.exit(f"report.py: no {metrics}; HINT: give loom-train's checkpoint.dir or the log.metrics file")
    records = read_metrics(metrics)
    prediction = None
    if os.path.isfile(os.path.join(run_dir, "prediction.json")):
        with open(os.path.join(run_dir, "prediction.json")) as f:
            prediction = json.load(f)
    files = write_plots(records, prediction, a.output or os.path.join(run_dir, "report"))
    if a.tensorboard is not None:
        files += write_tensorboard(records, prediction, a.tensorboard or os.path.join(run_dir, "tensorboard"))
    print(f"report of {len(records)} steps ({metrics}):")
    for f in files:
        print(f"  {f}")


if __name__ == "__main__":
    main()
