#include "unit_scaling_report/output_files.h"

#include <sys/stat.h>

#include <cstdio>
#include <stdexcept>

namespace unit_scaling::report {

bool is_directory(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

bool exists(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0;
}

void make_directories(const std::string& path) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    const std::string prefix = path.substr(0, slash);
    if (!prefix.empty() && !is_directory(prefix) && mkdir(prefix.c_str(), 0755) != 0) {
      throw std::runtime_error("cannot create folder " + prefix);
    }
    if (slash == std::string::npos) break;
  }
}

std::string PendingFiles::path(const std::string& name) {
  pending_.emplace_back(folder_ + "/." + name + ".tmp", folder_ + "/" + name);
  return pending_.back().first;
}

void PendingFiles::discard() const {
  for (const auto& [temp_path, final_path] : pending_) std::remove(temp_path.c_str());
}

void PendingFiles::commit() const {
  for (const auto& [temp_path, final_path] : pending_) {
    if (std::rename(temp_path.c_str(), final_path.c_str()) != 0) {
      throw std::runtime_error("cannot rename " + temp_path);
    }
  }
}

void write_output_files(const std::string& folder,
                        const std::function<void(PendingFiles& files)>& write) {
  make_directories(folder);
  PendingFiles files(folder);
  try {
    write(files);
  } catch (...) {
    files.discard();
    throw;
  }
  files.commit();
}

}  // namespace unit_scaling::report
