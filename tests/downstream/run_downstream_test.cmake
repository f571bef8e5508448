# ctest driver (cmake -P): install the built project into a scratch prefix, then configure,
# build and run tests/downstream against it with only that prefix on CMAKE_PREFIX_PATH: the
# library, the Gloo target (required when the build found Gloo's headers) and every C++ code
# block of README.md and docs/*.md (doc_blocks.py: one translation unit; launch=N blocks run as
# N ranks at once, as torchrun would start them; cuda blocks skip without a device).
# Inputs: BUILD_DIR, SOURCE_DIR, WORK_DIR, GENERATOR.
file(REMOVE_RECURSE "${WORK_DIR}")
function(run_step)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE status)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "downstream test step failed (${status}): ${ARGN}")
  endif()
endfunction()
run_step("${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")

# Gloo: required of the package when the build had it (so a lost export fails here).
file(STRINGS "${BUILD_DIR}/CMakeCache.txt" _gloo REGEX "^UNIT_SCALING_GLOO_INCLUDE_DIR:")
set(require_gloo OFF)
if(_gloo AND NOT _gloo MATCHES "NOTFOUND")
  set(require_gloo ON)
endif()
set(doc_args)
find_program(PYTHON3 python3)
if(require_gloo AND PYTHON3)
  run_step("${PYTHON3}" "${SOURCE_DIR}/tests/downstream/doc_blocks.py" cpp "${SOURCE_DIR}"
    "${WORK_DIR}/doc_blocks.cpp" "${WORK_DIR}/doc_blocks.txt")
  set(doc_args "-DDOC_BLOCKS_SOURCE=${WORK_DIR}/doc_blocks.cpp")
elseif(require_gloo)
  message(FATAL_ERROR "python3 not found: it generates the doc-block translation unit")
endif()
run_step("${CMAKE_COMMAND}" -S "${SOURCE_DIR}/tests/downstream" -B "${WORK_DIR}/build"
  -G "${GENERATOR}" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix"
  -DREQUIRE_GLOO=${require_gloo} ${doc_args})
run_step("${CMAKE_COMMAND}" --build "${WORK_DIR}/build" -j 2)
run_step("${WORK_DIR}/build/app")

if(doc_args)
  file(STRINGS "${WORK_DIR}/doc_blocks.txt" entries)
  set(port 29671)
  foreach(entry IN LISTS entries)
    string(REPLACE " " ";" fields "${entry}")
    list(GET fields 0 name)
    list(GET fields 1 launch)
    list(GET fields 3 runnable)
    if(NOT runnable)
      message(STATUS "doc block ${name}: compiled (no main)")
      continue()
    endif()
    message(STATUS "doc block ${name}: running with ${launch} process(es)")
    # All ranks start at once: execute_process runs its COMMANDs concurrently (a pipeline).
    set(commands)
    math(EXPR last "${launch} - 1")
    foreach(rank RANGE ${last})
      list(APPEND commands COMMAND "${CMAKE_COMMAND}" -E env RANK=${rank} LOCAL_RANK=${rank}
        WORLD_SIZE=${launch} MASTER_ADDR=127.0.0.1 MASTER_PORT=${port}
        "${WORK_DIR}/build/doc_blocks" "${name}")
    endforeach()
    math(EXPR port "${port} + 1")
    execute_process(${commands} RESULTS_VARIABLE statuses TIMEOUT 300)
    foreach(status IN LISTS statuses)
      if(NOT status EQUAL 0)
        message(FATAL_ERROR "doc block ${name} failed: exit statuses ${statuses}")
      endif()
    endforeach()
  endforeach()
endif()
