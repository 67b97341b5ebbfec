// `strata tokenize` and `strata detokenize`: the tokenizer from the command line.
// Text comes from --text, or --file (whole file as one text), or --jsonl (one JSON string per
// line -> one JSON id array per line, for batch checks against other tokenizers).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/command.h"
#include "core/error.h"
#include "core/file.h"
#include "tokenizer/tokenizer.h"

namespace strata::cli {
namespace {

std::string read_file(const std::string& path) { return read_regular_file(path); }

void print_ids(const std::vector<int>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); i++) {
    if (i) s += ", ";
    s += std::to_string(ids[i]);
  }
  s += "]\n";
  std::fwrite(s.data(), 1, s.size(), stdout);
}

// Calls `each(json, where)` for every line of the --jsonl file, parsed (a discarded value when
// the line is not JSON, so `each` reports it with `where`).
void for_each_jsonl_line(const std::string& path, const std::function<void(const nlohmann::json&, const std::string&)>& each) {
  std::ifstream f(path);
  STRATA_CHECK(f, "cannot open " + path);
  std::string line;
  size_t n = 0;
  while (std::getline(f, line)) {
    n++;
    each(nlohmann::json::parse(line, nullptr, false), "--jsonl line " + std::to_string(n));
  }
}

int cmd_tokenize(const Args& a) {
  auto tok = Tokenizer::load(a.need("tokenizer"));
  const bool special = a.flag("special");
  if (a.has("jsonl")) {
    for_each_jsonl_line(a.need("jsonl"), [&](const nlohmann::json& j, const std::string& where) {
      STRATA_CHECK(j.is_string(), where + " is not a JSON string");
      print_ids(tok->encode(j.get<std::string>(), special));
    });
    return 0;
  }
  STRATA_CHECK(a.has("text") != a.has("file"), "give exactly one of --text, --file, --jsonl\nusage:\n" + a.usage);
  std::string text = a.has("text") ? a.get("text", "") : read_file(a.need("file"));
  const long repeat = a.get_int("repeat", 1, 1, 1000000);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<int> ids;
  for (long r = 0; r < repeat; r++) ids = tok->encode(text, special);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (a.flag("time")) {
    // Throughput mode (benchmarks): a summary line instead of the ids.
    std::printf("{\"bytes\": %zu, \"tokens\": %zu, \"repeat\": %ld, \"seconds\": %.6f, \"mb_per_s\": %.3f}\n",
                text.size(), ids.size(), repeat, s, double(text.size()) * double(repeat) / s / 1e6);
    return 0;
  }
  print_ids(ids);
  return 0;
}

std::vector<int> ids_of_json(const nlohmann::json& j, const std::string& what) {
  STRATA_CHECK(j.is_array(), what + ": not a JSON array of ids");
  std::vector<int> ids;
  for (const auto& x : j) {
    STRATA_CHECK(x.is_number_integer(), what + ": " + x.dump() + " is not a token id");
    ids.push_back(x.get<int>());
  }
  return ids;
}

int cmd_detokenize(const Args& a) {
  auto tok = Tokenizer::load(a.need("tokenizer"));
  const bool skip = a.flag("skip-special");
  if (a.has("jsonl")) {
    for_each_jsonl_line(a.need("jsonl"), [&](const nlohmann::json& j, const std::string& where) {
      std::printf("%s\n", nlohmann::json(tok->decode(ids_of_json(j, where), skip)).dump().c_str());
    });
    return 0;
  }
  std::string s = a.need("ids");
  std::vector<int> ids;
  if (!s.empty() && s[0] == '[') {
    ids = ids_of_json(nlohmann::json::parse(s, nullptr, false), "--ids");
  } else {
    ids = parse_id_list(s, "--ids");
  }
  std::string text = tok->decode(ids, skip);
  std::fwrite(text.data(), 1, text.size(), stdout);
  return 0;
}

const CommandRegistration kTokenize(
    {"tokenize",
     "  strata tokenize   --tokenizer PATH [--special] (--text STR | --file F | --jsonl F) [--time --repeat N]\n"
     "      prints the ids as JSON (PATH: tokenizer.json, a directory holding one, or a .gguf);\n"
     "      --special adds the tokenizer's bos/eos template; --jsonl: one JSON string per line",
     {"special", "time"},
     cmd_tokenize});
const CommandRegistration kDetokenize({"detokenize",
                                       "  strata detokenize --tokenizer PATH (--ids 1,2,3|[1,2,3] | --jsonl F) [--skip-special]\n"
                                       "      prints the decoded text (no trailing newline); --jsonl: one id array per\n"
                                       "      line in, one JSON string per line out",
                                       {"skip-special"},
                                       cmd_detokenize});

}  // namespace
}  // namespace strata::cli
