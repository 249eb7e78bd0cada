# tests/mpi/small_dataset.cmake — loom_small_dataset(WORK LOOM_DATA): makes WORK/data.h5
# (a few hundred short verses) once per WORK folder; written under a temporary name and
# renamed, so tests running side by side never read a half-written file.
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
