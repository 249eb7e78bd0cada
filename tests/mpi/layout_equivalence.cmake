# tests/mpi/layout_equivalence.cmake — one layout against the single-rank run.
#
# cmake -DMPIEXEC=... -DNP_FLAG=-n -DNP=<ranks> -DLOOM_DATA=... -DLOOM_TRAIN=... -DCOMPARE=...
#       -DWORK=<folder> -DLAYOUT="--parallel.dp 2" -P layout_equivalence.cmake
# Makes a small dataset (once per WORK folder), trains the reference on one
# process, trains the same model with LAYOUT on NP ranks (same seed, data and
# global batch), and runs compare_runs on the two: initial weights bit for bit,
# losses, grad norms and final weights to 1e-5 relative (fp32; layouts differ only
# in summation order). BLEND=ON (optional) trains both runs on a blend of that
# dataset and a second one (docs/data-format.md, "Blends").

include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
loom_require(MPIEXEC NP_FLAG NP LOOM_DATA LOOM_TRAIN COMPARE WORK LAYOUT)
loom_small_dataset(${WORK} ${LOOM_DATA})

set(train_spec ${WORK}/data.h5)
if(BLEND)
  if(NOT EXISTS ${WORK}/data2.h5)
    set(text "")
    foreach(i RANGE 200)
      string(APPEND text "Psalm ${i}: The quick brown fox jumps over the lazy dog, ${i} times.\n")
    endforeach()
    file(WRITE ${WORK}/text2.txt "${text}")
    run_checked(${LOOM_DATA} --quiet --input ${WORK}/text2.txt --output ${WORK}/data2.h5.new --force)
    file(RENAME ${WORK}/data2.h5.new ${WORK}/data2.h5)
  endif()
  set(train_spec "0.6 ${WORK}/data.h5 0.4 ${WORK}/data2.h5")  # one argument
endif()

# LAYERS (optional, default 4): a deeper model for many virtual stages, in both runs.
if(NOT DEFINED LAYERS)
  set(LAYERS 4)
endif()
set(common --data.train ${train_spec} --model.layers ${LAYERS} --model.channels 32 --model.heads 4 --model.seq_len 16
           --train.steps 10 --train.global_batch 8 --train.micro_batch 1 --train.eval_interval 5
           --train.eval_batches 2 --optim.lr 3e-3 --optim.warmup_steps 2 --train.log_interval 100
           --checkpoint.save_init --checkpoint.overwrite)  # overwrite: ctest may run again in WORK
# BOTH (optional): options for both runs, e.g. "--train.precision bf16".
if(DEFINED BOTH)
  separate_arguments(both_args UNIX_COMMAND "${BOTH}")
  list(APPEND common ${both_args})
endif()
string(MAKE_C_IDENTIFIER "${LAYOUT}_L${LAYERS}_${BOTH}_${BLEND}" tag)
set(ref ${WORK}/reference_${tag})
set(run ${WORK}/layout_${tag})
separate_arguments(layout_args UNIX_COMMAND "${LAYOUT}")
# REF_LAYOUT (optional): the reference runs this layout on NP ranks instead of one rank,
# and TOL (default 1e-5) is the tolerance: 0 asks for the same bits (recompute vs none).
if(NOT DEFINED TOL)
  set(TOL 1e-5)
endif()
# WTOL (optional, default TOL): the weights' tolerance, when it differs (16-bit runs).
if(NOT DEFINED WTOL)
  set(WTOL ${TOL})
endif()
if(DEFINED REF_LAYOUT)
  separate_arguments(ref_args UNIX_COMMAND "${REF_LAYOUT}")
  run_checked(${MPIEXEC} --oversubscribe ${NP_FLAG} ${NP} ${LOOM_TRAIN} ${common} ${ref_args} --checkpoint.dir ${ref}_np)
  set(ref ${ref}_np)
else()
  run_checked(${LOOM_TRAIN} ${common} --checkpoint.dir ${ref})
endif()
run_checked(${MPIEXEC} --oversubscribe ${NP_FLAG} ${NP} ${LOOM_TRAIN} ${common} ${layout_args} --checkpoint.dir ${run})
run_checked(${COMPARE} ${ref} ${run} ${TOL} ${WTOL})
