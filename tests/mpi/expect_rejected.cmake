# tests/mpi/expect_rejected.cmake — a loom-train job with a bad layout must stop
# before any work, with a message naming the constraint, and not hang.
#
# cmake -DMPIEXEC=... -DNP_FLAG=-n -DNP=2 -DLOOM_TRAIN=... -DARGS="..." -DPATTERN=<regex> -P expect_rejected.cmake
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
loom_require(MPIEXEC NP_FLAG NP LOOM_TRAIN ARGS PATTERN)
separate_arguments(args UNIX_COMMAND "${ARGS}")
expect_job_rejected("${PATTERN}" "before rejecting its layout"
                    ${MPIEXEC} --oversubscribe ${NP_FLAG} ${NP} ${LOOM_TRAIN} ${args})
