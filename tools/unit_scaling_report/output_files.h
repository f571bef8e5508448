// The output folder and its files: report.csv and the figures are written under temporary names
// and renamed into place only once all of them succeeded, so a failed run leaves no partial
// report. POSIX rather than std::filesystem: libtorch.so exports an incompatible copy of the
// latter.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace unit_scaling::report {

bool is_directory(const std::string& path);
bool exists(const std::string& path);

// Creates `path` and the folders above it that are missing (mode 0755); throws
// std::runtime_error naming the first one that cannot be created.
void make_directories(const std::string& path);

// Output files written under temporary names (".NAME.tmp" in the folder), renamed into place once
// all of them succeeded.
class PendingFiles {
 public:
  explicit PendingFiles(const std::string& folder) : folder_(folder) {}
  // The temporary path to write `name` to.
  std::string path(const std::string& name);
  // Removes the temporary files.
  void discard() const;
  // Renames every temporary file to its name; throws std::runtime_error when one cannot be.
  void commit() const;

 private:
  std::string folder_;
  std::vector<std::pair<std::string, std::string>> pending_;  // (temporary, final) paths
};

// Creates `folder` (make_directories), calls `write` with the folder's PendingFiles and commits
// them once it returned; when it throws, discards them and rethrows.
void write_output_files(const std::string& folder,
                        const std::function<void(PendingFiles& files)>& write);

}  // namespace unit_scaling::report
