// The composite `embedding` runs embedding_renorm_ and then embedding_lookup on the same
// indices. A backend whose index check costs a device-to-host read (CUDA) may let the lookup
// report a bad index for both: while a LookupReportsIndexErrors scope is alive on this thread,
// its renorm still validates every index on the device and writes nothing when one is bad, but
// does not read the result back; the lookup that follows reads back once and raises the
// IndexError. So an eager forward with max_norm reads back once, not twice.
#pragma once

namespace unit_scaling::detail {

class LookupReportsIndexErrors {
 public:
  LookupReportsIndexErrors() : previous_(active_) { active_ = true; }
  ~LookupReportsIndexErrors() { active_ = previous_; }
  LookupReportsIndexErrors(const LookupReportsIndexErrors&) = delete;
  LookupReportsIndexErrors& operator=(const LookupReportsIndexErrors&) = delete;

  static bool active() { return active_; }

 private:
  bool previous_;
  static inline thread_local bool active_ = false;
};

}  // namespace unit_scaling::detail
