# tests/mpi/expect_exit.cmake — run an MPI job under `timeout` and check how it ended.
#
# cmake -DMPIEXEC=... -DNP_FLAG=-n -DNP=3 -DPROGRAM=... -DMODE=... -DEXPECT=fail|ok|rc2
#       -DPATTERN=<regex> -DSECONDS=60 -P expect_exit.cmake
# Fails when the job times out (exit 124/137 from timeout: a hang), when the exit
# code is not the expected kind, or when the combined stdout+stderr does not match
# PATTERN. Prints the job's output and elapsed time either way.
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
loom_require(MPIEXEC NP_FLAG NP PROGRAM MODE EXPECT PATTERN SECONDS)

string(TIMESTAMP t0 "%s")
execute_process(
  COMMAND timeout -k 10 ${SECONDS} ${MPIEXEC} --oversubscribe ${NP_FLAG} ${NP} ${PROGRAM} ${MODE}
  RESULT_VARIABLE rc
  OUTPUT_VARIABLE out
  ERROR_VARIABLE out)
string(TIMESTAMP t1 "%s")
math(EXPR elapsed "${t1} - ${t0}")
message("---- job output (exit ${rc}, ${elapsed} s) ----\n${out}---- end of job output ----")

if(rc STREQUAL "124" OR rc STREQUAL "137")
  message(FATAL_ERROR "the job hung: killed by timeout after ${SECONDS} s (exit ${rc})")
endif()
if(NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "the job did not exit normally: ${rc}")
endif()
if(EXPECT STREQUAL "fail" AND rc EQUAL 0)
  message(FATAL_ERROR "the job exited 0, expected a non-zero exit")
elseif(EXPECT STREQUAL "ok" AND NOT rc EQUAL 0)
  message(FATAL_ERROR "the job exited ${rc}, expected 0")
elseif(EXPECT STREQUAL "rc2" AND NOT rc EQUAL 2)
  message(FATAL_ERROR "the job exited ${rc}, expected 2")
endif()
string(REPLACE "\\n" "\n" pattern "${PATTERN}")
if(NOT out MATCHES "${pattern}")
  message(FATAL_ERROR "the job's output does not match: ${PATTERN}")
endif()
if(EXPECT STREQUAL "ok" AND out MATCHES "error:")
  message(FATAL_ERROR "the job succeeded but printed an error")
endif()
message("ok: exit ${rc} after ${elapsed} s, output matches")
