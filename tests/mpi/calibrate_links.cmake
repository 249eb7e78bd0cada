# tests/mpi/calibrate_links.cmake — `mpirun -np 2 loom-plan calibrate` measures the links and
# MPI's temporaries (the parts a one-rank calibrate leaves as placeholders): the file's
# intra_node link comes from the all-reduce (its alpha > 0, its effective bandwidth
# bandwidth x efficiency finite and positive), inter_node equals it (one node), and
# iallreduce_temp_per_byte is present.
#
# cmake -DMPIEXEC=... -DNP_FLAG=-n -DLOOM_PLAN=... -DWORK=dir -P calibrate_links.cmake
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
loom_require(MPIEXEC NP_FLAG LOOM_PLAN WORK)
file(MAKE_DIRECTORY ${WORK})
set(file ${WORK}/this-machine.json)
file(REMOVE ${file})
run_checked(${MPIEXEC} --oversubscribe --bind-to none ${NP_FLAG} 2 ${LOOM_PLAN} calibrate --output ${file})
file(READ ${file} json)
foreach(link intra_node inter_node)
  string(JSON latency GET "${json}" ${link} latency_us)
  string(JSON bandwidth GET "${json}" ${link} bandwidth_GB_per_s)
  string(JSON efficiency GET "${json}" ${link} efficiency)
  if(NOT latency GREATER 0 OR NOT bandwidth GREATER 0 OR NOT efficiency GREATER 0 OR efficiency GREATER 20)
    message(FATAL_ERROR "${link}: latency ${latency} us, bandwidth ${bandwidth} GB/s, efficiency ${efficiency}")
  endif()
  message("${link}: latency ${latency} us, bandwidth ${bandwidth} GB/s, efficiency ${efficiency}")
endforeach()
string(JSON sources GET "${json}" sources)
# A one-rank calibrate's file says its links are placeholders; this one names the all-reduce.
if(NOT sources MATCHES "MPI_Allreduce" OR sources MATCHES "placeholder")
  message(FATAL_ERROR "the links were not measured from the all-reduce: ${sources}")
endif()
string(JSON temp ERROR_VARIABLE err GET "${json}" iallreduce_temp_per_byte)
if(err)
  message(FATAL_ERROR "iallreduce_temp_per_byte missing: ${err}")
endif()
