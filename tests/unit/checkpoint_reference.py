#!/usr/bin/env python3
"""Reads a loom checkpoint with h5py alone (no loom code) and checks it against a weights file.

usage: checkpoint_reference.py CHECKPOINT_DIR WEIGHTS_H5

The index's virtual datasets params/<name> must equal the weights file's datasets bit for
bit (the final checkpoint's master weights are the final weights), exp_avg and
exp_avg_sq must hold the same tensors with the same shapes, and the root attributes
must carry the step, the layout and every shard's CRC-32, which is recomputed here.
"""
import json
import os
import sys
import zlib

import h5py
import numpy as np


def main():
    ckpt, weights = sys.argv[1], sys.argv[2]
    with h5py.File(os.path.join(ckpt, "index.h5"), "r") as f, h5py.File(weights, "r") as w:
        assert f.attrs["magic"] == "loom-checkpoint", f.attrs["magic"]
        names = sorted(w.keys())
        assert sorted(f["params"].keys()) == names, (sorted(f["params"].keys()), names)
        for n in names:
            a, b = f["params"][n][...], w[n][...]
            assert a.dtype == np.float32 and a.shape == b.shape, (n, a.shape, b.shape)
            assert np.array_equal(a, b), f"params/{n} differs from the weights file"
            for kind in ("exp_avg", "exp_avg_sq"):
                m = f[kind][n][...]
                assert m.shape == a.shape and np.all(np.isfinite(m)), (kind, n)
        assert np.all(f["exp_avg_sq"][names[0]][...] >= 0)
        layout = json.loads(f.attrs["layout"])
        assert {"dp", "tp", "pp", "zero", "precision"} <= set(layout), layout
        for s in json.loads(f.attrs["shards"]):
            with open(os.path.join(ckpt, s["file"]), "rb") as shard:
                data = shard.read()
            assert len(data) == s["bytes"] and zlib.crc32(data) == s["crc32"], s["file"]
        print(f"h5py: {len(names)} params equal weights.h5; exp_avg, exp_avg_sq present; step {int(f.attrs['step'])}")


if __name__ == "__main__":
    main()
