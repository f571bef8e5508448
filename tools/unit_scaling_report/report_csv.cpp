#include "unit_scaling_report/report_csv.h"

#include <fstream>
#include <iomanip>
#include <sstream>
#include <stdexcept>

namespace unit_scaling::report {

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (const char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

void Results::add(const std::string& section, const std::string& item, const std::string& variant,
                  double value) {
  std::ostringstream text;
  text << std::setprecision(10) << value;
  rows_.push_back(section + "," + item + "," + variant + "," + text.str());
}

void Results::add_text(const std::string& section, const std::string& item,
                       const std::string& value) {
  rows_.push_back(section + "," + item + ",," + csv_field(value));
}

void Results::write(const std::string& path) const {
  std::ofstream out(path);
  out << "section,item,variant,value\n";
  for (const auto& row : rows_) out << row << '\n';
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace unit_scaling::report
