// A compiled regular expression with the semantics Hugging Face tokenizers uses: Oniguruma
// (Debian libonig), Ruby syntax, UTF-8. Used for Split pre-tokenizers and Replace normalizers,
// so patterns like `\p{L}`, `(?i:'s)` and `\s+(?!\S)` mean exactly what they mean there.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace strata {

class Regex {
 public:
  explicit Regex(const std::string& pattern);  // throws Error naming the pattern
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping matches left to right as [begin, end) byte offsets, like onig's find_iter:
  // an empty match advances by one character.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* re_ = nullptr;  // OnigRegex; kept opaque so <oniguruma.h> stays out of headers
};

}  // namespace strata
