#!/usr/bin/env python3
"""tests/unit/sentencepiece_reference.py — the Python `sentencepiece` side of test_sentencepiece.

  encode: --model M.model [--encode FILE...] [--pieces P...]
          loads M.model with sentencepiece.SentencePieceProcessor and writes FILE.ids for every
          --encode FILE (sp.encode(text): ids separated by spaces; FILE read as UTF-8, newlines
          kept) and FILE.decoded (sp.decode(ids) as UTF-8); writes M.model.pieces with one line
          "PIECE ID" per --pieces P (sp.piece_to_id), then "vocab N", "pad N", "eos N".
  train:  --train-no-eos CORPUS --out PREFIX: a unigram model with eos_id=-1 and no
          <|endoftext|> (for the refusal test).
"""
import argparse, sys

import sentencepiece as spm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--encode", nargs="*", default=[])
    ap.add_argument("--pieces", nargs="*", default=[])
    ap.add_argument("--train-no-eos")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.train_no_eos:
        spm.SentencePieceTrainer.train(input=a.train_no_eos, model_prefix=a.out, model_type="unigram",
                                       vocab_size=300, eos_id=-1, bos_id=-1, minloglevel=2)
        return 0
    sp = spm.SentencePieceProcessor(model_file=a.model)
    for path in a.encode:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        ids = sp.encode(text)
        with open(path + ".ids", "w") as f:
            f.write(" ".join(map(str, ids)))
        with open(path + ".decoded", "w", encoding="utf-8", newline="") as f:
            f.write(sp.decode(ids))
    with open(a.model + ".pieces", "w", encoding="utf-8") as f:
        for p in a.pieces:
            f.write(f"{p} {sp.piece_to_id(p)}\n")
        f.write(f"vocab {sp.get_piece_size()}\npad {sp.pad_id()}\neos {sp.eos_id()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
