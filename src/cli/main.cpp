// `strata` entry point: finds the subcommand in the registry (cli/command.h), parses its
// options, runs it. Errors go to stderr with exit status 1; usage goes to stdout on `help`.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>

#include "cli/command.h"
#include "core/error.h"

namespace strata::cli {

std::map<std::string, Command>& command_registry() {
  static std::map<std::string, Command> registry;
  return registry;
}

std::string Args::need(const std::string& k) const {
  auto it = opts.find(k);
  STRATA_CHECK(it != opts.end() && !it->second.empty(), "missing --" + k + "\nusage:\n" + usage);
  return it->second;
}

std::string Args::get(const std::string& k, const std::string& fallback) const {
  auto it = opts.find(k);
  return it == opts.end() ? fallback : it->second;
}

long Args::get_int(const std::string& k, long fallback, long lo, long hi) const {
  auto it = opts.find(k);
  if (it == opts.end()) return fallback;
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(it->second.c_str(), &end, 10);
  STRATA_CHECK(!it->second.empty() && end && *end == 0 && errno == 0 && v >= lo && v <= hi,
               "--" + k + ": '" + it->second + "' is not an integer in [" + std::to_string(lo) + ", " +
                   std::to_string(hi) + "]");
  return v;
}

double Args::get_double(const std::string& k, double fallback, double lo, double hi) const {
  auto it = opts.find(k);
  if (it == opts.end()) return fallback;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(it->second.c_str(), &end);
  STRATA_CHECK(!it->second.empty() && end && *end == 0 && errno == 0 && v >= lo && v <= hi,
               "--" + k + ": '" + it->second + "' is not a number in [" + std::to_string(lo) + ", " +
                   std::to_string(hi) + "]");
  return v;
}

std::vector<int> parse_id_list(const std::string& s, const std::string& what) {
  std::vector<int> ids;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string tok = s.substr(i, j - i);
    char* end = nullptr;
    errno = 0;
    long v = std::strtol(tok.c_str(), &end, 10);
    STRATA_CHECK(!tok.empty() && end && *end == 0 && errno == 0 && v >= 0 && v <= 0x7fffffff,
                 what + ": '" + tok + "' is not a token id");
    ids.push_back(int(v));
    i = j + 1;
  }
  return ids;
}

std::string model_path_or_default(const Args& a) {
  std::string m = a.get("model", "");
  if (!m.empty()) return m;
  if (const char* env = std::getenv("STRATA_MODEL"); env && *env) return env;
  const char* cache = std::getenv("STRATA_MODEL_CACHE");
  const char* home = std::getenv("HOME");
  m = (cache && *cache ? std::string(cache) : std::string(home ? home : ".") + "/.cache/strata/models") +
      "/SmolLM2-135M-Instruct.Q4_1.gguf";
  STRATA_CHECK(access(m.c_str(), R_OK) == 0,
               "no --model given and the default model " + m + " is not there: run scripts/fetch_model.sh");
  return m;
}

namespace {

std::string all_usage() {
  std::string u = "usage:\n";
  for (const auto& [name, c] : command_registry()) u += c.usage + "\n";
  return u;
}

Args parse_args(const Command& c, int argc, char** argv) {
  Args a;
  a.cmd = c.name;
  a.usage = c.usage;
  for (int i = 2; i < argc; i++) {
    std::string s = argv[i];
    STRATA_CHECK(s.rfind("--", 0) == 0, "unexpected argument '" + s + "'\nusage:\n" + c.usage);
    s = s.substr(2);
    if (c.switches.count(s)) {
      a.opts[s] = "1";
    } else {
      STRATA_CHECK(i + 1 < argc, "--" + s + " needs a value\nusage:\n" + c.usage);
      a.opts[s] = argv[++i];
      a.all[s].push_back(a.opts[s]);
    }
  }
  return a;
}

}  // namespace
}  // namespace strata::cli

int main(int argc, char** argv) {
  using namespace strata::cli;
  try {
    STRATA_CHECK(argc >= 2, "no command\n" + all_usage());
    std::string name = argv[1];
    if (name == "--help" || name == "help" || name == "-h") {
      std::fputs(all_usage().c_str(), stdout);
      return 0;
    }
    auto it = command_registry().find(name);
    STRATA_CHECK(it != command_registry().end(), "unknown command '" + name + "'\n" + all_usage());
    return it->second.run(parse_args(it->second, argc, argv));
  } catch (const strata::Error& e) {
    std::fprintf(stderr, "strata: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "strata: error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    // A bug, not bad input (those are strata::Error): still a clean exit with the reason.
    std::fprintf(stderr, "strata: internal error: %s\n", e.what());
    return 2;
  }
}
