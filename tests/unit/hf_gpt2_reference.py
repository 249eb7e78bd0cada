#!/usr/bin/env python3
"""tests/unit/hf_gpt2_reference.py — the Python `safetensors` side of test_hf_gpt2.

  check:  --export DIR --loom DUMP
          DIR holds loom's export (model.safetensors, config.json). Checks config.json's
          GPT2Config keys, that the file's tensor names and shapes are exactly those of
          transformers' GPT2Model for that config (listed below from the module
          structure, independently of loom's code), that every tensor is float32 with
          __metadata__ {"format": "pt"}, and that the values equal loom's bit for bit,
          Conv1D weights transposed. DUMP holds loom's tensors as the test dumped them:
          manifest.json {loom name: shape} and NAME.f32 (raw little-endian float32).
  write:  --export DIR --write-hf OUT
          Re-saves DIR's tensors the way GPT2LMHeadModel.save_pretrained may (names
          prefixed `transformer.`, the h.N.attn.bias / masked_bias buffers, lm_head.weight
          = wte.weight) into OUT/prefixed/, and as float16 into OUT/half/, each with a copy
          of config.json: what the C++ test then imports.
Exits non-zero, printing why, on any difference.
"""
import argparse, json, os, shutil, sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file


def gpt2_tensors(cfg):
    """(name, shape) of every parameter of transformers' GPT2Model(cfg), in module order."""
    C, V, P, L = cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"], cfg["n_layer"]
    F = cfg.get("n_inner") or 4 * C
    out = [("wte.weight", (V, C)), ("wpe.weight", (P, C))]
    for i in range(L):
        h = f"h.{i}."
        out += [(h + "ln_1.weight", (C,)), (h + "ln_1.bias", (C,)),
                # Conv1D(nf, nx): weight (nx, nf) = (in, out), bias (nf,)
                (h + "attn.c_attn.weight", (C, 3 * C)), (h + "attn.c_attn.bias", (3 * C,)),
                (h + "attn.c_proj.weight", (C, C)), (h + "attn.c_proj.bias", (C,)),
                (h + "ln_2.weight", (C,)), (h + "ln_2.bias", (C,)),
                (h + "mlp.c_fc.weight", (C, F)), (h + "mlp.c_fc.bias", (F,)),
                (h + "mlp.c_proj.weight", (F, C)), (h + "mlp.c_proj.bias", (C,))]
    return out + [("ln_f.weight", (C,)), ("ln_f.bias", (C,))]


def fail(msg):
    print("hf_gpt2_reference: FAIL:", msg)
    sys.exit(1)


def check_config(cfg, loom):
    want = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "activation_function": "gelu_new",
            "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True, "resid_pdrop": 0.0, "embd_pdrop": 0.0,
            "attn_pdrop": 0.0, "n_ctx": cfg["n_positions"],
            "n_inner": None if loom["ffn"] == 4 * loom["channels"] else loom["ffn"],
            "n_layer": loom["layers"], "n_embd": loom["channels"], "n_head": loom["heads"],
            "vocab_size": loom["vocab"], "n_positions": loom["seq_len"]}
    for k, v in want.items():
        if k not in cfg or cfg[k] != v:
            fail(f"config.json {k} = {cfg.get(k, '(absent)')!r}, expected {v!r}")


def check(export, dump):
    cfg = json.load(open(os.path.join(export, "config.json")))
    manifest = json.load(open(os.path.join(dump, "manifest.json")))
    check_config(cfg, manifest["__config__"])
    path = os.path.join(export, "model.safetensors")
    with safe_open(path, framework="np") as f:
        if f.metadata() != {"format": "pt"}:
            fail(f"__metadata__ is {f.metadata()}")
    got = load_file(path)
    want = gpt2_tensors(cfg)
    if sorted(got) != sorted(n for n, _ in want):
        fail(f"names differ: missing {sorted(set(n for n, _ in want) - set(got))}, "
             f"extra {sorted(set(got) - set(n for n, _ in want))}")
    for name, shape in want:
        t = got[name]
        if t.dtype != np.float32 or t.shape != shape:
            fail(f"{name}: {t.dtype} {t.shape}, expected float32 {shape}")
        loom_name = name[:-len(".weight")] if name in ("wte.weight", "wpe.weight") else name
        ref = np.fromfile(os.path.join(dump, loom_name + ".f32"), dtype="<f4").reshape(manifest[loom_name])
        if name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
            ref = ref.T  # loom stores nn.Linear's (out, in); Conv1D is (in, out)
        if not np.array_equal(t.view(np.uint32), np.ascontiguousarray(ref).view(np.uint32)):
            fail(f"{name}: values differ from loom's {loom_name}")
    print(f"hf_gpt2_reference: {len(want)} tensors match GPT2Model names, shapes and loom's values")


def write_hf(export, out):
    tensors = load_file(os.path.join(export, "model.safetensors"))
    L = json.load(open(os.path.join(export, "config.json")))["n_layer"]
    P = tensors["wpe.weight"].shape[0]
    prefixed = {"transformer." + k: v for k, v in tensors.items()}
    for i in range(L):  # the buffers older transformers versions saved
        prefixed[f"transformer.h.{i}.attn.bias"] = np.tril(np.ones((P, P), dtype=np.float32)).reshape(1, 1, P, P)
        prefixed[f"transformer.h.{i}.attn.masked_bias"] = np.array(-1e4, dtype=np.float32)
    prefixed["lm_head.weight"] = tensors["wte.weight"].copy()
    half = {k: v.astype(np.float16) for k, v in tensors.items()}
    for sub, t in (("prefixed", prefixed), ("half", half)):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
        save_file(t, os.path.join(out, sub, "model.safetensors"), metadata={"format": "pt"})
        shutil.copy(os.path.join(export, "config.json"), os.path.join(out, sub, "config.json"))
    print(f"hf_gpt2_reference: wrote {out}/prefixed and {out}/half")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--export", required=True)
    ap.add_argument("--loom")
    ap.add_argument("--write-hf")
    a = ap.parse_args()
    if a.loom:
        check(a.export, a.loom)
    if a.write_hf:
        write_hf(a.export, a.write_hf)


if __name__ == "__main__":
    main()
