// `strata quantize`: a dense HF checkpoint to compressed-tensors INT4 (RTN or GPTQ) with an
// optional quality report (per-tensor weight error, perplexity quantised vs original on held-out
// text). Not the numerics: those are quant/quantize.h, quant/gptq.h and quant/calibration.h.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/command.h"
#include "core/error.h"
#include "core/file.h"
#include "model/model.h"
#include "quant/calibration.h"
#include "quant/export.h"
#include "quant/perplexity.h"
#include "quant/quantize.h"
#include "tokenizer/tokenizer.h"

namespace strata::cli {
namespace {

std::string read_all(const std::string& path) { return read_regular_file(path); }

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// "a,re:b{1,2},c" -> {"a", "re:b{1,2}", "c"}: commas inside (), [] or {} belong to a regex.
std::vector<std::string> split_patterns(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  for (char c : s) {
    if (c == '(' || c == '[' || c == '{') depth++;
    if ((c == ')' || c == ']' || c == '}') && depth > 0) depth--;
    if (c == ',' && depth == 0) {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

// Text -> ids with bos first when the tokenizer adds one (as `strata perplexity` does).
std::vector<int> encode_with_bos(const Tokenizer& tok, const std::string& text, int* bos_out) {
  std::vector<int> ids = tok.encode(text, /*add_special=*/true);
  const bool add_bos = !ids.empty() && tok.bos_id() && ids[0] == *tok.bos_id() &&
                       tok.encode("a", true).size() > tok.encode("a", false).size();
  *bos_out = add_bos ? *tok.bos_id() : -1;
  return ids;
}

// GPTQ calibration: run the bf16 model over `samples` windows of `seq_len` tokens, recording the
// inputs of every module that will be quantised.
std::map<std::string, InputHessian> calibrate(const std::string& model_dir, const Tokenizer& tok,
                                              const std::string& calib_file, int samples, int seq_len,
                                              const std::vector<std::string>& targets) {
  int bos = -1;
  const std::vector<int> ids = encode_with_bos(tok, read_all(calib_file), &bos);
  const int avail = int(ids.size() / size_t(seq_len));
  STRATA_CHECK(avail >= 1, calib_file + ": " + std::to_string(ids.size()) + " tokens, fewer than one --seq-len window");
  if (avail < samples) {
    std::fprintf(stderr, "calibration: the text holds only %d windows of %d tokens (asked for %d)\n", avail, seq_len,
                 samples);
    samples = avail;
  }
  auto model = Model::load(model_dir);
  auto capture = std::make_unique<HessianCaptureBackend>(make_cpu_backend(), model->weights(), targets);
  HessianCaptureBackend* cap = capture.get();
  model->set_backend(std::move(capture));
  std::vector<float> logits(size_t(model->config().n_vocab));  // [1, vocab]: only the last row is asked for
  const auto t0 = std::chrono::steady_clock::now();
  for (int s = 0; s < samples; s++) {
    // Consecutive windows; each starts like a document (bos) when the tokenizer uses one.
    std::vector<int> w(ids.begin() + int64_t(s) * seq_len, ids.begin() + int64_t(s + 1) * seq_len);
    if (bos >= 0) w[0] = bos;
    KvCache kv = model->new_cache(seq_len);
    model->forward(w.data(), seq_len, kv, logits.data(), /*all_logits=*/false);
    const double el = since(t0);
    if (::isatty(2) || s + 1 == samples)
      std::fprintf(stderr, "\rcalibration: %d/%d windows of %d tokens  %.1f s  eta %.0f s%s", s + 1, samples, seq_len,
                   el, el / (s + 1) * (samples - s - 1), s + 1 == samples ? "\n" : "");
  }
  return cap->take();
}

PerplexityResult eval_ppl(const std::string& model_dir, const std::vector<int>& ids, int bos, int ctx,
                          const char* what) {
  std::fprintf(stderr, "perplexity of %s (%s)\n", what, model_dir.c_str());
  auto model = Model::load(model_dir);
  PerplexityOptions po;
  po.ctx = ctx;
  po.bos_id = bos;
  po.progress = ::isatty(2);
  return perplexity(*model, ids, po);
}

int cmd_quantize(const Args& a) {
  const std::string in = a.need("model"), out = a.need("output");
  QuantizeOptions opt;
  const std::string method = a.get("method", "rtn");
  STRATA_CHECK(method == "rtn" || method == "gptq", "--method must be rtn or gptq\nusage:\n" + a.usage);
  opt.gptq = method == "gptq";
  opt.scheme.group_size = int(a.get_int("group-size", 32, 8, 1 << 16));
  STRATA_CHECK(opt.scheme.group_size % 8 == 0, "--group-size must be a multiple of 8 (32, 64, 128)");
  STRATA_CHECK(!(a.flag("symmetric") && a.flag("asymmetric")), "--symmetric and --asymmetric exclude each other");
  opt.scheme.symmetric = !a.flag("asymmetric");
  if (a.has("ignore")) {
    opt.ignore_given = true;
    for (const std::string& v : a.get_all("ignore"))  // repeatable, each a comma-separated list
      for (std::string& p : split_patterns(v)) opt.ignore.push_back(std::move(p));
  }
  opt.max_shard_bytes = size_t(a.get_int("max-shard-mb", 5120, 1, 1 << 30)) << 20;
  opt.progress = ::isatty(2);  // a redrawn bar is for terminals, not for logs
  opt.gptq_options.damp = a.get_double("damp", 0.01, 0.0, 10.0);
  const std::string tok_path = a.get("tokenizer", in);
  const auto t_all = std::chrono::steady_clock::now();

  std::map<std::string, InputHessian> hess;
  double calib_s = 0;
  if (opt.gptq) {
    STRATA_CHECK(a.has("calibration"), "--method gptq needs --calibration FILE\nusage:\n" + a.usage);
    auto tok = Tokenizer::load(tok_path);
    std::vector<std::string> ignore;
    const std::string cfg = read_all(in + "/config.json");
    const std::vector<std::string> targets = modules_to_quantize(TensorStore::open(in), cfg, opt, &ignore);
    const auto t0 = std::chrono::steady_clock::now();
    hess = calibrate(in, *tok, a.need("calibration"), int(a.get_int("samples", 128, 1, 1 << 20)),
                     int(a.get_int("seq-len", 512, 8, 1 << 20)), targets);
    calib_s = since(t0);
    opt.hessians = &hess;
  }
  const auto tq = std::chrono::steady_clock::now();
  const QuantizeSummary sum = quantize_checkpoint(in, out, opt);
  hess.clear();
  const double quant_s = since(tq);
  int fallback = 0;
  for (const auto& t : sum.tensors) fallback += opt.gptq && !t.gptq;
  std::fprintf(stderr, "wrote %s: %zu modules quantized (%s, group %d, %s), %d tensors copied, %d shard(s), %.1f s\n",
               out.c_str(), sum.tensors.size(), method.c_str(), opt.scheme.group_size,
               opt.scheme.symmetric ? "symmetric" : "asymmetric", sum.n_copied, sum.n_shards, since(t_all));
  if (fallback) std::fprintf(stderr, "  %d modules had no calibration rows and were rounded to nearest\n", fallback);
  if (!a.flag("report")) return 0;

  std::string ppl_json = "null";
  if (a.has("eval-file")) {
    auto tok = Tokenizer::load(tok_path);
    int bos = -1;
    std::vector<int> ids = encode_with_bos(*tok, read_all(a.need("eval-file")), &bos);
    const long max_tokens = a.get_int("eval-max-tokens", 0, 0, 1L << 40);
    if (max_tokens > 0 && long(ids.size()) > max_tokens) ids.resize(size_t(max_tokens));
    const int ctx = int(a.get_int("eval-ctx", 512, 4, 1 << 20));
    const PerplexityResult base = eval_ppl(in, ids, bos, ctx, "the original model");
    // Strata's kernels run group-32 symmetric INT4 directly; other schemes are evaluated on their
    // exact dequantised weights (f32), which is what any runtime computes with them.
    const bool native = opt.scheme.group_size == 32 && opt.scheme.symmetric;
    std::string qdir = out;
    if (!native) {
      qdir = out + "/.strata-eval-dequantized";
      dequantize_checkpoint(out, qdir, DType::F32);
    }
    const PerplexityResult q = eval_ppl(qdir, ids, bos, ctx, "the quantized model");
    if (!native) std::filesystem::remove_all(qdir);
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "{\"eval_tokens\": %zu, \"ctx\": %d, \"scored_tokens\": %lld, \"original\": %.6f, "
                  "\"original_stderr\": %.6f, \"quantized\": %.6f, \"quantized_stderr\": %.6f, \"ratio\": %.6f, "
                  "\"quantized_path\": \"%s\"}",
                  ids.size(), ctx, q.scored, base.ppl, base.stderr_ppl, q.ppl, q.stderr_ppl, q.ppl / base.ppl,
                  native ? "int4 kernels" : "dequantized f32");
    ppl_json = buf;
  }
  std::string tensors = quantize_summary_json(sum);
  // The report: the summary plus timing and the perplexity comparison, one JSON object on stdout
  // and in OUT/quantization_report.json.
  char head[256];
  std::snprintf(head, sizeof head, "{\n  \"method\": \"%s\",\n  \"group_size\": %d,\n  \"symmetric\": %s,\n  "
                "\"calibration_seconds\": %.2f,\n  \"quantize_seconds\": %.2f,\n  \"perplexity\": ",
                method.c_str(), opt.scheme.group_size, opt.scheme.symmetric ? "true" : "false", calib_s, quant_s);
  const std::string report = std::string(head) + ppl_json + ",\n  \"summary\": " + tensors + "\n}\n";
  std::ofstream rf(out + "/quantization_report.json", std::ios::binary);
  rf << report;
  std::fputs(report.c_str(), stdout);
  return 0;
}

const CommandRegistration kQuantize(
    {"quantize",
     "  strata quantize --model BF16_DIR --output DIR [--method rtn|gptq] [--group-size 32|64|128]\n"
     "                  [--symmetric|--asymmetric] [--ignore P1,P2,... [--ignore P3 ...]] [--max-shard-mb 5120]\n"
     "                  [--calibration FILE --samples 128 --seq-len 512 --damp 0.01] [--tokenizer T]\n"
     "                  [--report [--eval-file TEXT --eval-ctx 512 --eval-max-tokens N]]\n"
     "      compressed-tensors pack-quantized INT4 (what Kimi-K2-Thinking ships), streamed tensor by tensor.\n"
     "      --ignore: comma-separated module names or re: patterns (replaces the default: lm_head; for MoE\n"
     "      models also attention, shared experts, dense MLPs and routers). --method gptq captures each\n"
     "      linear's inputs on --calibration text. --report: per-tensor weight error, and with --eval-file\n"
     "      the perplexity of the original and the quantized model (JSON on stdout and in DIR)",
     {"symmetric", "asymmetric", "report"},
     cmd_quantize});

}  // namespace
}  // namespace strata::cli
