// compressed-tensors ignore-list matching.
#include "quant/int4_format.h"

#include <regex>

namespace strata {

bool QuantConfig::is_ignored(const std::string& module_name) const {
  if (!compiled_) {
    auto c = std::make_shared<std::vector<std::regex>>();
    for (const auto& pat : ignore)
      if (pat.rfind("re:", 0) == 0) c->emplace_back(pat.substr(3), std::regex::ECMAScript);
    compiled_ = c;
  }
  // Python's re.match anchors at the start only; regex_search with match_continuous does too.
  for (const auto& re : *compiled_)
    if (std::regex_search(module_name, re, std::regex_constants::match_continuous)) return true;
  for (const auto& pat : ignore) {
    if (pat.rfind("re:", 0) == 0) {
      continue;
    } else if (pat == module_name) {
      return true;
    } else {
      // compressed-tensors also matches a bare name against the module's last component
      // ("lm_head" ignores "lm_head"; a suffix match keeps "model.lm_head" style names working).
      const std::string suffix = "." + pat;
      if (module_name.size() > suffix.size() &&
          module_name.compare(module_name.size() - suffix.size(), suffix.size(), suffix) == 0)
        return true;
    }
  }
  return false;
}

}  // namespace strata
