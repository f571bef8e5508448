// UNIT_SCALING_API marks the public API of the shared library. The library is built with hidden
// default visibility, so everything else (kernels, checks, backends) stays internal.
#pragma once

#if defined(_WIN32)
#define UNIT_SCALING_API
#else
#define UNIT_SCALING_API __attribute__((visibility("default")))
#endif
