// The `strata` binary, black box: `logits` output against the HF reference, `generate` against the
// reference greedy ids, and bad arguments giving an error and exit code 1.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "test_util.h"

namespace strata {
namespace {

struct CmdResult {
  int code;
  std::string out;
};

CmdResult run_strata(const std::string& args) {
  const std::string cmd = std::string(STRATA_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  return CmdResult{WEXITSTATUS(status), out};
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); i++) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

TEST(Cli, LogitsMatchReference) {
  test::TempDir tmp;
  const std::string model = test::fixtures_dir() + "/models/kimi_k2_int4";
  TensorStore ref = TensorStore::open(test::fixtures_dir() + "/reference/kimi_k2_int4.safetensors");
  const auto ids = test::read_i32(ref, "prompt_1.input_ids");
  const auto want = test::read_f32(ref, "prompt_1.logits");
  const std::string out = tmp.path + "/logits.safetensors";
  CmdResult r = run_strata("logits --model " + model + " --input-ids " + join(ids) + " --output " + out);
  ASSERT_EQ(r.code, 0) << r.out;
  TensorStore got = TensorStore::open(out);
  const TensorView& t = got.get("logits");
  EXPECT_EQ(t.shape, (std::vector<int64_t>{int64_t(ids.size()), 512}));
  const auto g = test::read_f32(got, "logits");
  ASSERT_EQ(g.size(), want.size());
  EXPECT_LE(test::rel_err(g.data(), want.data(), g.size()), 1e-3);
}

TEST(Cli, GenerateMatchesReferenceGreedy) {
  const std::string model = test::fixtures_dir() + "/models/qwen3_moe";
  TensorStore ref = TensorStore::open(test::fixtures_dir() + "/reference/qwen3_moe.safetensors");
  const auto ids = test::read_i32(ref, "prompt_2.input_ids");
  const auto greedy = test::read_i32(ref, "prompt_2.greedy_ids");
  CmdResult r = run_strata("generate --model " + model + " --input-ids " + join(ids) + " --max-tokens " +
              std::to_string(greedy.size()) + " --ignore-eos");
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j.get<std::vector<int>>(), greedy);
}

TEST(Cli, BadInputGivesErrorNotCrash) {
  const std::string model = test::fixtures_dir() + "/models/llama";
  const std::pair<std::string, std::string> cases[] = {
      {"", "no command"},
      {"frobnicate", "unknown command"},
      {"logits --model " + model + " --output /dev/null", "--input-ids"},
      {"logits --model " + model + " --input-ids 1,x,3 --output /dev/null", "not a token id"},
      {"logits --model " + model + " --input-ids 1,99999 --output /dev/null", "out of range"},
      {"logits --model /nonexistent --input-ids 1 --output /dev/null", "/nonexistent"},
      {"generate --model " + model + " --input-ids 1 --max-tokens -3", "--max-tokens"},
  };
  for (const auto& [args, needle] : cases) {
    CmdResult r = run_strata(args);
    EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
    EXPECT_NE(r.out.find("error"), std::string::npos) << args << "\n" << r.out;
    EXPECT_NE(r.out.find(needle), std::string::npos) << args << "\n" << r.out;
  }
}

}  // namespace
}  // namespace strata
