#!/bin/bash
# usage: run.sh family rep
B=${BUILD_DIR:-build}/launch  # run from the repository root
common="--data.train g.h5 --model.channels 256 --model.heads 8 --model.seq_len 128 --train.steps 25 --train.global_batch 16 --train.micro_batch 16 --train.eval_interval 0 --train.log_interval 1 --optim.lr 1e-3"
case $1 in
 gpt) extra="--model.layers 6";;
 bert) extra="--model.family bert --model.ln_placement post --model.layers 6";;
 t5) extra="--model.family t5 --model.layers 3 --model.decoder_layers 3";;
 llama) extra="--model.layers 6 --model.norm rmsnorm --model.mlp swiglu --model.positions rope --model.kv_heads 2";;
esac
rm -rf run_$1_$2
OMP_NUM_THREADS=2 $B/loom-train $common $extra --checkpoint.dir run_$1_$2 > log_$1_$2.txt 2>&1
