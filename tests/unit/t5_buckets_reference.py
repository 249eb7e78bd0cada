#!/usr/bin/env python3
"""tests/unit/t5_buckets_reference.py — an independent numpy re-implementation of Hugging Face
T5Attention._relative_position_bucket (transformers/models/t5/modeling_t5.py), in f32 as
PyTorch computes it. Prints, for each configuration, the offsets n = s - t at which the bucket
changes and the new bucket: the table test_positions.cpp (T5Buckets.MatchReference) holds.
Run: python3 tests/unit/t5_buckets_reference.py
"""
import math

import numpy as np


def bucket(rel, bidirectional, num_buckets, max_distance):
    rel = np.asarray(rel, dtype=np.int64)
    out = np.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        out += (rel > 0).astype(np.int64) * num_buckets
        rel = np.abs(rel)
    else:
        rel = -np.minimum(rel, 0)
    max_exact = num_buckets // 2
    small = rel < max_exact
    with np.errstate(divide="ignore"):
        ratio = np.log(rel.astype(np.float32) / np.float32(max_exact))
    ratio = ratio / np.float32(math.log(max_distance / max_exact)) * np.float32(num_buckets - max_exact)
    large = max_exact + np.where(small, 0, ratio).astype(np.int64)
    large = np.minimum(large, num_buckets - 1)
    return out + np.where(small, rel, large)


if __name__ == "__main__":
    for bidi, nb, md, lo, hi in [(False, 32, 128, -300, 300), (True, 32, 128, -300, 300), (True, 8, 20, -40, 40),
                                 (False, 10, 50, -80, 80)]:
        n = np.arange(lo, hi + 1)
        b = bucket(n, bidi, nb, md)
        changes = [(int(n[0]), int(b[0]))] + [(int(n[i]), int(b[i])) for i in range(1, len(n)) if b[i] != b[i - 1]]
        print("bidirectional" if bidi else "causal", nb, md, lo, hi)
        print(", ".join("{%d, %d}" % c for c in changes))
