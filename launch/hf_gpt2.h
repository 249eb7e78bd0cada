// launch/hf_gpt2.h — loom's GPT weights file <-> a Hugging Face GPT-2 checkpoint
// (model.safetensors + config.json, what transformers' GPT2LMHeadModel.from_pretrained
// loads). What `loom-ckpt export` / `import` call; docs/data-format.md describes the
// mapping ("Hugging Face interop").
//
// Names are loom's with `.weight` added to wte and wpe; the four matrices of each block
// (c_attn, attn.c_proj, c_fc, mlp.c_proj) are transposed, because HF's Conv1D stores
// (in, out) where loom stores nn.Linear's (out, in). Nothing else changes, so
// import(export(w)) == w bit for bit.
#pragma once

#include <string>
#include <vector>

#include "io/files.h"

namespace loom {

// Writes out_dir/model.safetensors (F32, no `transformer.` prefix, no lm_head: it is
// tied), out_dir/config.json and the model's embedded tokenizer: tokenizer.json (a
// Hugging Face one, verbatim) or tokenizer.model (SentencePiece); nothing for bytes.
// Creates out_dir; returns the names of the files written. Refuses a file whose
// architecture is not gpt2, and existing outputs unless overwrite is yes.
std::vector<std::string> export_hf_gpt2(const std::string& weights_h5, const std::string& out_dir,
                                        Overwrite overwrite);

// Reads a GPT-2 safetensors file (F32/F16/BF16; names with or without `transformer.`)
// and the config.json beside it (the head count cannot be read off the shapes), checks
// every tensor's presence and shape, and writes a loom weights file (architecture
// gpt2) for loom-train --model.init and loom-generate. Ignores the attn.bias /
// attn.masked_bias buffers and an lm_head.weight equal to wte; refuses one that differs.
void import_hf_gpt2(const std::string& safetensors_path, const std::string& weights_h5, Overwrite overwrite);

}  // namespace loom
