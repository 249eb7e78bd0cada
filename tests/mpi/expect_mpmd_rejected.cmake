# tests/mpi/expect_mpmd_rejected.cmake — an MPMD job whose two ranks get different
# arguments (APP0, APP1: each "[--wdir DIR] PROGRAM ARGS...") must stop before training,
# naming what differs, and not hang.
#
# cmake -DMPIEXEC=... -DAPP0="..." -DAPP1="..." -DPATTERN=<regex> [-DLOOM_DATA=... -DWORK=DIR]
#       -P expect_mpmd_rejected.cmake
# With LOOM_DATA and WORK, first writes WORK/a/data.h5 and WORK/b/data.h5 from different
# text: the same relative path names different files in the two ranks' --wdir.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
loom_require(MPIEXEC APP0 APP1 PATTERN)
if(DEFINED LOOM_DATA)
  foreach(d a b)
    file(MAKE_DIRECTORY ${WORK}/${d})
    set(text "")
    foreach(i RANGE 300)
      string(APPEND text "Dataset ${d}, line ${i}: the word was ${i}.\n")
    endforeach()
    file(WRITE ${WORK}/${d}/text.txt "${text}")
    execute_process(COMMAND ${LOOM_DATA} --quiet --force --input ${WORK}/${d}/text.txt --output ${WORK}/${d}/data.h5
                    RESULT_VARIABLE made)
    if(NOT made EQUAL 0)
      message(FATAL_ERROR "loom-data failed for ${WORK}/${d}")
    endif()
  endforeach()
endif()
separate_arguments(app0 UNIX_COMMAND "${APP0}")
separate_arguments(app1 UNIX_COMMAND "${APP1}")
expect_job_rejected("${PATTERN}" "although its ranks disagree" ${MPIEXEC} --oversubscribe -n 1 ${app0} : -n 1 ${app1})
