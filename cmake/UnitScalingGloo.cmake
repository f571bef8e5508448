# Defines UnitScaling::gloo_headers, an INTERFACE target giving Gloo's headers and USE_C10D_GLOO,
# which include/unit_scaling/distributed/gloo_group.h needs (c10d's ProcessGroupGloo). The torch
# wheel ships the Gloo backend but not these headers: Debian's libgloo-dev provides them. Defined
# only when the headers are found; installed with the package, where find_package(UnitScaling
# COMPONENTS gloo) requires it.
include_guard(GLOBAL)
find_path(UNIT_SCALING_GLOO_INCLUDE_DIR gloo/algorithm.h HINTS ${UNIT_SCALING_GLOO_INCLUDE_HINT}
  DOC "Folder holding gloo/algorithm.h (apt-get install libgloo-dev)")
if(UNIT_SCALING_GLOO_INCLUDE_DIR AND NOT TARGET UnitScaling::gloo_headers)
  add_library(UnitScaling::gloo_headers INTERFACE IMPORTED)
  set_target_properties(UnitScaling::gloo_headers PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${UNIT_SCALING_GLOO_INCLUDE_DIR}"
    INTERFACE_COMPILE_DEFINITIONS USE_C10D_GLOO)
endif()
