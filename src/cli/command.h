// The `strata` subcommand registry. Each src/cli/cmd_*.cpp defines its commands and registers
// them with a static `CommandRegistration`, so adding a command never touches main.cpp.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace strata::cli {

// Parsed `--key value` options and `--flag` switches of one invocation.
struct Args {
  std::string cmd;
  std::map<std::string, std::string> opts;                 // the last value of each option
  std::map<std::string, std::vector<std::string>> all;     // every value, in order (repeatable options)
  bool flag(const std::string& k) const { return opts.count(k) != 0; }
  bool has(const std::string& k) const { return opts.count(k) != 0; }
  // The value of a required option; throws Error naming it and the command's usage.
  std::string need(const std::string& k) const;
  std::string get(const std::string& k, const std::string& fallback) const;
  long get_int(const std::string& k, long fallback, long lo, long hi) const;
  double get_double(const std::string& k, double fallback, double lo, double hi) const;
  // Every value of a repeatable option (`--ignore A --ignore B`), in order; empty when absent.
  std::vector<std::string> get_all(const std::string& k) const {
    auto it = all.find(k);
    return it == all.end() ? std::vector<std::string>{} : it->second;
  }
  std::string usage;  // the command's usage text, appended to argument errors
};

struct Command {
  std::string name;
  std::string usage;                // one or more lines: "strata NAME --opt X ..." and what it does
  std::set<std::string> switches;   // options that take no value (e.g. "ignore-eos")
  std::function<int(const Args&)> run;
};

std::map<std::string, Command>& command_registry();

struct CommandRegistration {
  explicit CommandRegistration(Command c) { command_registry()[c.name] = std::move(c); }
};

// "3,14,15" -> {3, 14, 15}; throws Error naming `what` on anything else.
std::vector<int> parse_id_list(const std::string& s, const std::string& what);

// --model, else $STRATA_MODEL, else the SmolLM2 GGUF that scripts/fetch_model.sh puts in the
// model cache ($STRATA_MODEL_CACHE or ~/.cache/strata/models); throws Error saying how to get it.
std::string model_path_or_default(const Args& a);

}  // namespace strata::cli
