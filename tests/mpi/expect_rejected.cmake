# tests/mpi/expect_rejected.cmake — a loom-train job with a bad layout must stop
# before any work, with a message naming the constraint, and not hang.
#
# cmake -DMPIEXEC=... -DNP_FLAG=-n -DNP=2 -DLOOM_TRAIN=... -DARGS="..." -DPATTERN=<regex> -P expect_rejected.cmake
foreach(var MPIEXEC NP_FLAG NP LOOM_TRAIN ARGS PATTERN)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "expect_rejected.cmake: -D${var}=... is required")
  endif()
endforeach()
separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND timeout -k 10 60 ${MPIEXEC} --oversubscribe ${NP_FLAG} ${NP} ${LOOM_TRAIN} ${args}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("---- job output (exit ${rc}) ----\n${out}---- end ----")
if(rc STREQUAL "124" OR rc STREQUAL "137")
  message(FATAL_ERROR "the job hung (killed by timeout)")
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "the job was expected to fail but exited 0")
endif()
if(NOT out MATCHES "${PATTERN}")
  message(FATAL_ERROR "the output does not match: ${PATTERN}")
endif()
if(out MATCHES "step +1/")
  message(FATAL_ERROR "the job trained before rejecting its layout")
endif()
