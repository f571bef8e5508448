// Umbrella header of unit-scaling-cpp.
#pragma once

#include <unit_scaling/functional.h>
#include <unit_scaling/grad_scale.h>
#include <unit_scaling/nn/embedding.h>
#include <unit_scaling/scale.h>
