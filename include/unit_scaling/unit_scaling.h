// Umbrella header of unit-scaling-cpp: the whole public API, the vocab-parallel module included
// (it needs only c10d's ProcessGroup header, part of LibTorch). Not included: the optional
// distributed/gloo_group.h, which needs Gloo's headers.
#pragma once

#include <unit_scaling/distributed/vocab_parallel_embedding.h>
#include <unit_scaling/functional.h>
#include <unit_scaling/grad_scale.h>
#include <unit_scaling/index_check_policy.h>
#include <unit_scaling/nn/embedding.h>
#include <unit_scaling/scale.h>
