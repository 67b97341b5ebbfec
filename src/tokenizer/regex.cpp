#include "tokenizer/regex.h"

#include <oniguruma.h>

#include <mutex>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace strata {

namespace {
void onig_init_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    OnigEncoding enc = ONIG_ENCODING_UTF8;
    onig_initialize(&enc, 1);
  });
}

// One OnigRegion per thread: regexes are shared read-only between HTTP threads.
struct RegionHolder {
  OnigRegion* r = onig_region_new();
  ~RegionHolder() { onig_region_free(r, 1); }
};
}  // namespace

Regex::Regex(const std::string& pattern) : pattern_(pattern) {
  onig_init_once();
  OnigRegex re = nullptr;
  OnigErrorInfo einfo;
  const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
  int r = onig_new(&re, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_RUBY, &einfo);
  if (r != ONIG_NORMAL) {
    OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str(msg, r, &einfo);
    throw Error("bad regex '" + pattern + "': " + reinterpret_cast<char*>(msg));
  }
  re_ = re;
}

Regex::~Regex() {
  if (re_) onig_free(static_cast<OnigRegex>(re_));
}

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  thread_local RegionHolder holder;
  OnigRegion* region = holder.r;
  const auto* start = reinterpret_cast<const OnigUChar*>(text.data());
  const auto* end = start + text.size();
  size_t pos = 0;
  while (pos <= text.size()) {
    int r = onig_search(static_cast<OnigRegex>(re_), start, end, start + pos, end, region, ONIG_OPTION_NONE);
    if (r == ONIG_MISMATCH) break;
    if (r < 0) {
      OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
      onig_error_code_to_str(msg, r);
      throw Error("regex '" + pattern_ + "' failed: " + reinterpret_cast<char*>(msg));
    }
    size_t b = size_t(region->beg[0]), e = size_t(region->end[0]);
    out.emplace_back(b, e);
    if (e == b) {
      if (e >= text.size()) break;
      pos = e + unicode::utf8_len((unsigned char)text[e]);
    } else {
      pos = e;
    }
  }
}

}  // namespace strata
