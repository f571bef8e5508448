// report.csv: every number the report prints, one row each as section,item,variant,value.
#pragma once

#include <string>
#include <vector>

namespace unit_scaling::report {

// A CSV field (RFC 4180): quoted, with quotes doubled, when it holds a comma, quote or newline.
std::string csv_field(const std::string& text);

// The rows of report.csv, collected while the report runs and written at the end.
class Results {
 public:
  // A number, printed with 10 significant digits.
  void add(const std::string& section, const std::string& item, const std::string& variant,
           double value);
  // A text value (no variant), quoted as a CSV field where needed.
  void add_text(const std::string& section, const std::string& item, const std::string& value);
  // The header line, then the rows in the order added; throws std::runtime_error when `path`
  // cannot be written.
  void write(const std::string& path) const;

 private:
  std::vector<std::string> rows_;
};

}  // namespace unit_scaling::report
