# tests/mpi/finetune_equivalence.cmake — fine-tuning a classifier (model.head classify,
# docs/finetuning.md) in one layout against the single-rank run.
#
# cmake -DMPIEXEC=... -DNP_FLAG=-n -DNP=<ranks> -DLOOM_DATA=... -DLOOM_TRAIN=... -DCOMPARE=...
#       -DWORK=<folder> -DLAYOUT="--parallel.tp 2" [-DBOTH="--finetune.freeze_backbone"]
#       [-DFAMILY="--model.family bert --model.ln_placement post"] -P finetune_equivalence.cmake
# Once per WORK folder: a labelled dataset (loom-data classify, 3 labels told apart by
# their words, padded to 16 tokens) and a tiny language model pretrained on the small
# token dataset (one rank; FAMILY: its model options, e.g. a BERT encoder, which then
# pools the first token under its padding mask). Give each FAMILY its own WORK.
# Then the classifier fine-tunes from that model (finetune.from: the backbone loaded, the
# head from the seed) on one rank and with LAYOUT on NP ranks; compare_runs checks the
# initial weights bit for bit, losses, grad norms, val loss and val accuracy of every
# evaluation, and the final weights, to 1e-5 relative.

include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
loom_require(MPIEXEC NP_FLAG NP LOOM_DATA LOOM_TRAIN COMPARE WORK LAYOUT)
loom_small_dataset(${WORK} ${LOOM_DATA})
set(model --model.layers 4 --model.channels 32 --model.heads 4 --model.seq_len 16)
string(RANDOM LENGTH 8 nonce)  # tests running side by side never read a half-written file
if(NOT EXISTS ${WORK}/labelled.h5)
  set(text "")
  set(words "psalm;sing;praise;law;offering;priest;king;war;city")
  foreach(i RANGE 119)
    math(EXPR label "${i} % 3")
    math(EXPR w "${label} * 3 + (${i} / 3) % 3")
    list(GET words ${w} word)
    if(DEFINED FAMILY)  # short lines (6-8 of 16 tokens): the encoder's padding mask matters
      string(APPEND text "${word} ${i}\tlabel${label}\n")
    else()
      string(APPEND text "the ${word} of line ${i}\tlabel${label}\n")
    endif()
  endforeach()
  file(WRITE ${WORK}/labelled_${nonce}.tsv "${text}")
  run_checked(${LOOM_DATA} classify --quiet --input ${WORK}/labelled_${nonce}.tsv --output ${WORK}/labelled_${nonce}.h5
              --seq-len 16 --val-fraction 0.25)
  file(RENAME ${WORK}/labelled_${nonce}.h5 ${WORK}/labelled.h5)
  file(REMOVE ${WORK}/labelled_${nonce}.tsv)
endif()
if(NOT EXISTS ${WORK}/pretrained.h5)
  separate_arguments(family_args UNIX_COMMAND "${FAMILY}")
  run_checked(${LOOM_TRAIN} --data.train ${WORK}/data.h5 ${model} ${family_args} --train.steps 5 --train.global_batch 8
              --train.micro_batch 8 --train.log_interval 100 --checkpoint.dir ${WORK}/pretrain_${nonce}
              --checkpoint.overwrite)
  file(RENAME ${WORK}/pretrain_${nonce}/weights.h5 ${WORK}/pretrained.h5)
  file(REMOVE_RECURSE ${WORK}/pretrain_${nonce})
endif()

set(common --data.train ${WORK}/labelled.h5 --model.head classify --finetune.from ${WORK}/pretrained.h5
           --train.steps 6 --train.global_batch 8 --train.micro_batch 2 --train.eval_interval 3
           --optim.lr 3e-3 --optim.warmup_steps 2 --train.log_interval 100
           --checkpoint.save_init --checkpoint.overwrite)
if(DEFINED BOTH)
  separate_arguments(both_args UNIX_COMMAND "${BOTH}")
  list(APPEND common ${both_args})
endif()
string(MAKE_C_IDENTIFIER "${LAYOUT}_${BOTH}" tag)
separate_arguments(layout_args UNIX_COMMAND "${LAYOUT}")
run_checked(${LOOM_TRAIN} ${common} --checkpoint.dir ${WORK}/finetune_ref_${tag})
run_checked(${MPIEXEC} --oversubscribe ${NP_FLAG} ${NP} ${LOOM_TRAIN} ${common} ${layout_args}
            --checkpoint.dir ${WORK}/finetune_${tag})
run_checked(${COMPARE} ${WORK}/finetune_ref_${tag} ${WORK}/finetune_${tag} 1e-5)
