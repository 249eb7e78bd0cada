#!/usr/bin/env python3
"""tests/unit/hf_tokenizer_reference.py — the Python `tokenizers` side of test_hf_tokenizer.

  train:  --style gpt2|gpt2-prefix|llama3 --corpus FILE --out DIR [--vocab 1500] [--encode FILE...]
          trains a byte-level BPE on FILE's lines, saves DIR/tokenizer.json (gpt2: merges as
          "a b" strings; llama3: Split regex + ByteLevel(use_regex=False), ignore_merges),
          reloads it from the file and writes FILE.ids for every --encode FILE (ids separated
          by spaces, add_special_tokens=False; FILE read as UTF-8 bytes, CRLF kept) and
          FILE.decoded (decode(ids, skip_special_tokens=False) as UTF-8).
  bench:  --bench FILE --tokenizer tokenizer.json: prints MB/s and tokens/s of encode (whole
          text, one call) and encode_batch (the text's lines) with RAYON threads as set.
"""
import argparse, json, os, sys, time

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def train(style, corpus, out, vocab, encode):
    tok = Tokenizer(models.BPE())
    if style == "llama3":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=(style == "gpt2-prefix"))
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    with open(corpus, encoding="utf-8") as f:
        tok.train_from_iterator(f.readlines(), trainer)
    path = os.path.join(out, "tokenizer.json")
    tok.save(path)
    j = json.load(open(path, encoding="utf-8"))
    merges = j["model"]["merges"]
    if style == "gpt2":  # the older "a b" string form
        j["model"]["merges"] = [m if isinstance(m, str) else " ".join(m) for m in merges]
    if style == "llama3":
        j["model"]["ignore_merges"] = True
    json.dump(j, open(path, "w", encoding="utf-8"), ensure_ascii=False)
    tok = Tokenizer.from_file(path)
    for fn in encode:
        text = open(fn, "rb").read().decode("utf-8")
        ids = tok.encode(text, add_special_tokens=False).ids
        decoded = tok.decode(ids, skip_special_tokens=False)
        assert style == "gpt2-prefix" or decoded == text, f"python round trip of {fn}"
        with open(fn + ".ids", "w") as f:
            f.write(" ".join(map(str, ids)))
        with open(fn + ".decoded", "wb") as f:  # add_prefix_space: the added spaces stay
            f.write(decoded.encode("utf-8"))


def bench(fn, path):
    tok = Tokenizer.from_file(path)
    text = open(fn, "rb").read().decode("utf-8")
    mb = len(text.encode("utf-8")) / 1e6
    lines = text.splitlines(keepends=True)
    for name, fnc in (("encode (1 call)", lambda: len(tok.encode(text, add_special_tokens=False).ids)),
                      ("encode_batch (lines)", lambda: sum(len(e.ids) for e in tok.encode_batch(lines, add_special_tokens=False)))):
        best = None
        for _ in range(3):
            t0 = time.perf_counter(); n = fnc(); dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        print(f"python tokenizers {name}: {mb:.2f} MB, {n} tokens, {best:.3f} s, {mb / best:.2f} MB/s, "
              f"{n / best / 1e6:.2f} M tokens/s (RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', 'unset')}, "
              f"{os.cpu_count()} CPUs)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--style", default="gpt2")
    ap.add_argument("--corpus")
    ap.add_argument("--out")
    ap.add_argument("--vocab", type=int, default=1500)
    ap.add_argument("--encode", nargs="*", default=[])
    ap.add_argument("--bench")
    ap.add_argument("--tokenizer")
    a = ap.parse_args()
    if a.bench:
        bench(a.bench, a.tokenizer)
    else:
        train(a.style, a.corpus, a.out, a.vocab, a.encode)
