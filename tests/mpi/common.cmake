# tests/mpi/common.cmake — what the -P scripts of tests/mpi share.
#
# loom_require(VAR...): fails the script (naming it) unless every -DVAR=... was given.
# run_checked(COMMAND...): runs it (300 s limit), fails the test with its output unless it
#   exits 0, prints the output otherwise.
# loom_small_dataset(WORK LOOM_DATA): makes WORK/data.h5 (a few hundred short verses) once
#   per WORK folder; written under a temporary name and renamed, so tests running side by
#   side never read a half-written file.
# expect_job_rejected(PATTERN WHAT COMMAND...): runs a job (60 s limit) that must fail
#   before training: not hang, not exit 0, print PATTERN (a regex; "\n" in it is a
#   newline), and never log step 1 (WHAT says why it should not have trained).
function(loom_require)
  get_filename_component(script "${CMAKE_SCRIPT_MODE_FILE}" NAME)
  foreach(var ${ARGN})
    if(NOT DEFINED ${var})
      message(FATAL_ERROR "${script}: -D${var}=... is required")
    endif()
  endforeach()
endfunction()

function(run_checked)
  execute_process(COMMAND timeout -k 10 300 ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (exit ${rc}): ${ARGN}\n${out}")
  endif()
  message("${out}")
endfunction()

function(expect_job_rejected pattern what)
  execute_process(COMMAND timeout -k 10 60 ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message("---- job output (exit ${rc}) ----\n${out}---- end ----")
  if(rc STREQUAL "124" OR rc STREQUAL "137")
    message(FATAL_ERROR "the job hung (killed by timeout)")
  endif()
  if(rc EQUAL 0)
    message(FATAL_ERROR "the job was expected to fail but exited 0")
  endif()
  string(REPLACE "\\n" "\n" regex "${pattern}")
  if(NOT out MATCHES "${regex}")
    message(FATAL_ERROR "the output does not match: ${pattern}")
  endif()
  if(out MATCHES "step +1/")
    message(FATAL_ERROR "the job trained ${what}")
  endif()
endfunction()

function(loom_small_dataset work loom_data)
  file(MAKE_DIRECTORY ${work})
  if(EXISTS ${work}/data.h5)
    return()
  endif()
  string(RANDOM LENGTH 8 nonce)
  set(text "")
  foreach(i RANGE 300)
    string(APPEND text "Verse ${i}: In the beginning was the word, and the word was with God; line ${i}.\n")
  endforeach()
  file(WRITE ${work}/text_${nonce}.txt "${text}")
  execute_process(COMMAND ${loom_data} --quiet --input ${work}/text_${nonce}.txt --output ${work}/data_${nonce}.h5 --force
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "loom-data failed: ${out}")
  endif()
  file(RENAME ${work}/data_${nonce}.h5 ${work}/data.h5)
  file(REMOVE ${work}/text_${nonce}.txt)
endfunction()
