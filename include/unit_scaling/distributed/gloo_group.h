// make_gloo_group: a CPU process group (c10d + Gloo over `hostname`'s interface) for
// VocabParallelEmbedding, header-only and optional. It needs Gloo's headers (Debian's
// libgloo-dev; the torch wheel ships the backend but not them) and USE_C10D_GLOO defined; the
// CMake target UnitScaling::gloo_headers provides both.
//
// Example:
//   auto store = c10::make_intrusive<c10d::TCPStore>(address, store_options);
//   auto group = unit_scaling::distributed::make_gloo_group(store, rank, world_size);
#pragma once

#include <string>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

namespace unit_scaling::distributed {

inline c10::intrusive_ptr<c10d::ProcessGroup> make_gloo_group(
    c10::intrusive_ptr<c10d::Store> store, int rank, int world_size,
    const std::string& hostname = "127.0.0.1") {
  auto options = c10d::ProcessGroupGloo::Options::create();
  options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(hostname));
  auto backend = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world_size, options);
  auto group = c10::make_intrusive<c10d::ProcessGroup>(store, rank, world_size);
  group->setDefaultBackend(c10d::ProcessGroup::BackendType::GLOO);
  group->setBackend(c10::DeviceType::CPU, c10d::ProcessGroup::BackendType::GLOO, backend);
  return group;
}

}  // namespace unit_scaling::distributed
