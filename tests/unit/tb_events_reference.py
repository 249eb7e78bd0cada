#!/usr/bin/env python3
"""tests/unit/tb_events_reference.py — read TensorBoard event files back, independently of the
writer's code path: the TFRecord framing (length, masked CRC-32C of the length, payload,
masked CRC-32C of the payload) checked record by record, each payload decoded as an
`Event` protobuf (tensorboardX's compiled event.proto, the same message TensorBoard reads).

    python3 tb_events_reference.py LOGDIR   ->   one line per tag: "TAG COUNT LAST_STEP LAST_VALUE"
Exits 1 on a bad CRC, a truncated record, or no event file."""
import glob
import os
import struct
import sys

from tensorboardX.crc32c import crc32c
from tensorboardX.proto import event_pb2


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(path):
    with open(path, "rb") as f:
        data = f.read()
    i = 0
    while i < len(data):
        if i + 12 > len(data):
            sys.exit(f"{path}: truncated header at byte {i}")
        header = data[i:i + 8]
        (n,) = struct.unpack("<Q", header)
        (crc,) = struct.unpack("<I", data[i + 8:i + 12])
        if crc != masked(header):
            sys.exit(f"{path}: bad length CRC at byte {i}")
        payload = data[i + 12:i + 12 + n]
        if len(payload) != n or i + 16 + n > len(data):
            sys.exit(f"{path}: truncated record at byte {i}")
        (crc,) = struct.unpack("<I", data[i + 12 + n:i + 16 + n])
        if crc != masked(payload):
            sys.exit(f"{path}: bad payload CRC at byte {i}")
        yield payload
        i += 16 + n


def main():
    files = sorted(glob.glob(os.path.join(sys.argv[1], "events.out.tfevents.*")))
    if not files:
        sys.exit(f"no event file in {sys.argv[1]}")
    tags = {}
    for path in files:
        for payload in records(path):
            ev = event_pb2.Event.FromString(payload)
            for v in ev.summary.value:
                value = v.simple_value if v.HasField("simple_value") else (v.tensor.float_val[0] if v.tensor.float_val else float("nan"))
                tags.setdefault(v.tag, []).append((ev.step, value))
    for tag in sorted(tags):
        step, value = tags[tag][-1]
        print(f"{tag} {len(tags[tag])} {step} {value:.6g}")


if __name__ == "__main__":
    main()
