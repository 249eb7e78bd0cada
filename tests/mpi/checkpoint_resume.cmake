# tests/mpi/checkpoint_resume.cmake — stop, resume, and compare with the uninterrupted run.
#
# cmake -DMPIEXEC=... -DNP_FLAG=-n -DLOOM_DATA=... -DLOOM_TRAIN=... -DCOMPARE=... -DWORK=<folder>
#       -DMODE=exact|reshard -DNP=<ranks> -DLAYOUT="..." [-DBOTH="..."]
#       [-DSAVE_NP=<ranks> -DSAVE_LAYOUT="..."] -P checkpoint_resume.cmake
# exact: LAYOUT on NP ranks for 10 steps straight, and again stopped after K = 4 steps
#   (train.exit_after_steps, which saves a checkpoint) and resumed (checkpoint.resume auto)
#   for the rest: losses, grad norms, loss scales, skips and final weights must be the
#   same bits (compare_runs tolerance 0).
# reshard: SAVE_LAYOUT on SAVE_NP ranks stops after 4 steps (once per WORK folder); a copy
#   of that run directory is resumed under LAYOUT on NP ranks; the whole run must equal
#   the single-rank uninterrupted run to fp32 reduction error (1e-5), as every layout does.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
loom_require(MPIEXEC NP_FLAG LOOM_DATA LOOM_TRAIN COMPARE WORK MODE NP LAYOUT)

loom_small_dataset(${WORK} ${LOOM_DATA})
set(common --data.train ${WORK}/data.h5 --model.layers 4 --model.channels 32 --model.heads 4 --model.seq_len 16
           --train.steps 10 --train.global_batch 8 --train.micro_batch 1 --train.eval_interval 5
           --train.eval_batches 2 --optim.lr 3e-3 --optim.warmup_steps 2 --train.log_interval 100)
if(DEFINED BOTH)
  separate_arguments(both_args UNIX_COMMAND "${BOTH}")
  list(APPEND common ${both_args})
endif()
separate_arguments(layout_args UNIX_COMMAND "${LAYOUT}")
set(mpirun ${MPIEXEC} --oversubscribe ${NP_FLAG})
string(MAKE_C_IDENTIFIER "${MODE}_${LAYOUT}_${BOTH}_${SAVE_LAYOUT}" tag)

if(MODE STREQUAL "exact")
  set(full ${WORK}/ckpt_${tag}_full)
  set(split ${WORK}/ckpt_${tag}_split)
  run_checked(${mpirun} ${NP} ${LOOM_TRAIN} ${common} ${layout_args} --checkpoint.dir ${full} --checkpoint.overwrite)
  run_checked(${mpirun} ${NP} ${LOOM_TRAIN} ${common} ${layout_args} --checkpoint.dir ${split} --checkpoint.overwrite
              --train.exit_after_steps 4)
  run_checked(${mpirun} ${NP} ${LOOM_TRAIN} ${common} ${layout_args} --checkpoint.dir ${split}
              --checkpoint.resume auto)
  run_checked(${COMPARE} ${full} ${split} 0 0)
elseif(MODE STREQUAL "reshard")
  foreach(var SAVE_NP SAVE_LAYOUT)
    if(NOT DEFINED ${var})
      message(FATAL_ERROR "checkpoint_resume.cmake: MODE reshard needs -D${var}=...")
    endif()
  endforeach()
  # The single-rank reference and the saved run, each made once per WORK folder (under a
  # temporary name, renamed when complete, so side-by-side tests never see half of one).
  string(RANDOM LENGTH 8 nonce)
  # Runs with BOTH (another model, say) get their own reference and saved run.
  set(both_tag "")
  if(DEFINED BOTH AND NOT BOTH STREQUAL "")
    string(MAKE_C_IDENTIFIER "_${BOTH}" both_tag)
  endif()
  set(reference ${WORK}/ckpt_reference${both_tag})
  if(NOT EXISTS ${reference})
    run_checked(${LOOM_TRAIN} ${common} --checkpoint.dir ${reference}_${nonce})
    file(RENAME ${reference}_${nonce} ${reference})
  endif()
  string(MAKE_C_IDENTIFIER "${SAVE_LAYOUT}" save_tag)
  set(saved ${WORK}/ckpt_saved_${save_tag}${both_tag})
  if(NOT EXISTS ${saved})
    separate_arguments(save_args UNIX_COMMAND "${SAVE_LAYOUT}")
    run_checked(${mpirun} ${SAVE_NP} ${LOOM_TRAIN} ${common} ${save_args} --checkpoint.dir ${saved}_${nonce}
                --train.exit_after_steps 4)
    file(RENAME ${saved}_${nonce} ${saved})
  endif()
  set(run ${WORK}/ckpt_${tag})
  file(REMOVE_RECURSE ${run})
  file(COPY ${saved}/ DESTINATION ${run})
  run_checked(${mpirun} ${NP} ${LOOM_TRAIN} ${common} ${layout_args} --checkpoint.dir ${run} --checkpoint.resume auto)
  run_checked(${COMPARE} ${reference} ${run} 1e-5)
else()
  message(FATAL_ERROR "checkpoint_resume.cmake: MODE must be exact or reshard, got ${MODE}")
endif()
