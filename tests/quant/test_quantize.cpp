// strata quantize: RTN of each bf16 fixture reproduces its *_int4 fixture bit for bit (packed
// words, scales, shapes, config.json bytes); the asymmetric grid, GPTQ and the Hessian capture
// checked against their definitions; sharded output reads back as the single-file one.
// Not the compressed-tensors interop check (tools/quant/ct_interop.py, needs PyTorch).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "core/dtype.h"
#include "kernels/cpu/ops.h"
#include "model/model.h"
#include "quant/calibration.h"
#include "quant/export.h"
#include "quant/gptq.h"
#include "quant/int4_format.h"
#include "quant/perplexity.h"
#include "quant/quantize.h"
#include "test_util.h"

namespace strata {
namespace {

std::vector<std::string> fixture_ignore(const std::string& int4_dir) {
  auto j = nlohmann::json::parse(test::read_text(int4_dir + "/config.json"));
  return j["quantization_config"]["ignore"].get<std::vector<std::string>>();
}

class FixtureRtn : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureRtn, ReproducesInt4FixtureBitForBit) {
  const std::string src = test::fixtures_dir() + "/models/" + GetParam();
  const std::string ref = src + "_int4";
  test::TempDir d;
  QuantizeOptions opt;
  opt.progress = false;
  opt.ignore_given = true;
  opt.ignore = fixture_ignore(ref);
  const QuantizeSummary s = quantize_checkpoint(src, d.path + "/q", opt);
  EXPECT_GT(s.tensors.size(), 0u);
  test::expect_same_tensors(d.path + "/q", ref);
  EXPECT_EQ(test::read_text(d.path + "/q/config.json"), test::read_text(ref + "/config.json"));
  EXPECT_EQ(test::read_text(d.path + "/q/tokenizer.json"), test::read_text(src + "/tokenizer.json"));
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureRtn, ::testing::Values("llama", "qwen3_moe", "kimi_k2"));

TEST(QuantizeDefaults, IgnoreListsMatchTheFixturesUpToKimisRouter) {
  for (const std::string m : {"llama", "qwen3_moe", "kimi_k2"}) {
    const std::string src = test::fixtures_dir() + "/models/" + m;
    const std::string cfg = test::read_text(src + "/config.json");
    TensorStore st = TensorStore::open(src);
    const auto linears = linear_modules(st, cfg);
    const auto def = default_ignore_list(linears, cfg);
    const auto fix = fixture_ignore(src + "_int4");
    ASSERT_GE(def.size(), fix.size()) << m;
    EXPECT_TRUE(std::equal(fix.begin(), fix.end(), def.begin())) << m;
    // kimi_k2_int4 quantizes its routers (Kimi's own list has no router entry); our default adds
    // one, and it must catch routers (mlp.gate) and nothing else.
    for (size_t i = fix.size(); i < def.size(); i++) {
      QuantConfig q;
      q.ignore = {def[i]};
      for (const auto& l : linears)
        EXPECT_EQ(q.is_ignored(l), l.size() > 9 && l.compare(l.size() - 9, 9, ".mlp.gate") == 0) << m << " " << l;
    }
  }
}

TEST(QuantizeDefaults, DefaultRunOnDenseFixtureViaCliMatchesFixture) {
  const std::string src = test::fixtures_dir() + "/models/llama";
  test::TempDir d;
  const std::string cmd = std::string(STRATA_BINARY) + " quantize --model " + src + " --output " + d.path + "/q 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  test::expect_same_tensors(d.path + "/q", src + "_int4");
  EXPECT_EQ(test::read_text(d.path + "/q/config.json"), test::read_text(src + "_int4/config.json"));
}

TEST(QuantizeCli, RepeatedIgnoreFlagsGiveTheFixturesOwnList) {
  // kimi_k2 with its fixture's ignore list, one --ignore flag per pattern: the *_int4 fixture.
  const std::string src = test::fixtures_dir() + "/models/kimi_k2";
  const auto fix = fixture_ignore(src + "_int4");
  ASSERT_GE(fix.size(), 2u);
  test::TempDir d;
  std::string cmd = std::string(STRATA_BINARY) + " quantize --model " + src + " --output " + d.path + "/q";
  for (const auto& p : fix) cmd += " --ignore '" + p + "'";
  ASSERT_EQ(std::system((cmd + " 2>/dev/null").c_str()), 0) << cmd;
  test::expect_same_tensors(d.path + "/q", src + "_int4");
}

TEST(QuantizeCli, GptqWithReportOnAMoeFixture) {
  // Calibration and held-out text from the corpus; every routed expert that saw tokens is GPTQ'd.
  const std::string src = test::fixtures_dir() + "/models/qwen3_moe";
  const std::string corpus = test::read_text(test::fixtures_dir() + "/corpus/moby-dick.txt");
  test::TempDir d;
  test::write_text(d.path + "/cal.txt", corpus.substr(0, 20000));
  test::write_text(d.path + "/eval.txt", corpus.substr(corpus.size() - 20000));
  const std::string cmd = std::string(STRATA_BINARY) + " quantize --model " + src + " --output " + d.path +
                          "/q --method gptq --asymmetric --calibration " + d.path + "/cal.txt --samples 4 --seq-len 64" +
                          " --report --eval-file " + d.path + "/eval.txt --eval-ctx 64 --eval-max-tokens 256 > " +
                          d.path + "/report.json 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const auto rep = nlohmann::json::parse(test::read_text(d.path + "/report.json"));
  EXPECT_EQ(rep, nlohmann::json::parse(test::read_text(d.path + "/q/quantization_report.json")));
  TensorStore out = TensorStore::open(d.path + "/q");
  int packed = 0;
  for (const auto& [name, t] : out.tensors()) packed += name.find(".weight_zero_point") != std::string::npos;
  EXPECT_EQ(rep["summary"]["quantized"].get<int>(), packed);
  for (const auto& t : rep["summary"]["tensors"])
    EXPECT_EQ(t["method"].get<std::string>() == "gptq", t["calib_rows"].get<long>() > 0) << t["module"];
  const double orig = rep["perplexity"]["original"], quant = rep["perplexity"]["quantized"];
  EXPECT_TRUE(std::isfinite(quant) && quant > 1.0 && std::isfinite(orig));
  EXPECT_NEAR(rep["perplexity"]["ratio"].get<double>(), quant / orig, 1e-5);
}

std::vector<float> random_weights(int N, int K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::vector<float> w(size_t(N) * K);
  for (auto& x : w) x = bf16_to_f32(f32_to_bf16(nd(rng)));
  for (int k = 0; k < K; k++) w[size_t(1) * K + k] = std::fabs(w[size_t(1) * K + k]);  // one-signed rows
  for (int k = 0; k < K; k++) w[size_t(2) * K + k] = -std::fabs(w[size_t(2) * K + k]);
  return w;
}

TEST(Int4Grid, AsymmetricCodesStayWithinAStepAndZerosRoundTrip) {
  const int N = 13, K = 128;  // N not a multiple of 8: zero-point packing pads
  for (int gs : {32, 128}) {
    const int G = K / gs;
    const auto w = random_weights(N, K, 5);
    std::vector<int8_t> q(size_t(N) * K), z(size_t(N) * G);
    std::vector<uint16_t> s(size_t(N) * G);
    for (int n = 0; n < N; n++)
      rtn_quantize_row(&w[size_t(n) * K], K, {gs, false}, &q[size_t(n) * K], &s[size_t(n) * G], &z[size_t(n) * G]);
    std::vector<uint32_t> packed(size_t(N) * K / 8);
    for (int n = 0; n < N; n++) pack_int4_row(&q[size_t(n) * K], K, &packed[size_t(n) * K / 8]);
    const auto zp = pack_int4_zeros(z.data(), N, G);
    ASSERT_EQ(zp.size(), size_t((N + 7) / 8) * G);
    std::vector<float> deq(size_t(N) * K);
    ct_dequantize(packed.data(), s.data(), zp.data(), N, K, gs, deq.data());
    for (int n = 0; n < N; n++)
      for (int g = 0; g < G; g++) {
        EXPECT_EQ(int4_zero_at(zp.data(), G, n, g), z[size_t(n) * G + g]);
        const float sc = bf16_to_f32(s[size_t(n) * G + g]);
        for (int k = g * gs; k < (g + 1) * gs; k++) {
          const size_t i = size_t(n) * K + k;
          EXPECT_EQ(int4_code(&packed[size_t(n) * K / 8], k), q[i]);
          EXPECT_FLOAT_EQ(deq[i], float(q[i] - z[size_t(n) * G + g]) * sc);
          // bf16 rounding of the scale and the integer zero point may stretch the range by a
          // fraction of a step at the edges, never by a whole one.
          EXPECT_LE(std::fabs(deq[i] - w[i]), sc) << n << "," << k;
        }
      }
  }
}

TEST(Gptq, IdentityHessianIsRtn) {
  const int N = 16, K = 256;
  const auto w = random_weights(N, K, 11);
  std::vector<float> H(size_t(K) * K, 0.f);
  for (int k = 0; k < K; k++) H[size_t(k) * K + k] = 1.f;
  for (bool sym : {true, false})
    for (int gs : {32, 128}) {
      const Int4Scheme sc{gs, sym};
      const int G = K / gs;
      std::vector<int8_t> q1(size_t(N) * K), q2(q1.size()), z1(size_t(N) * G), z2(z1.size());
      std::vector<uint16_t> s1(size_t(N) * G), s2(s1.size());
      gptq_quantize(w.data(), N, K, H, sc, GptqOptions{}, q1.data(), s1.data(), z1.data());
      for (int n = 0; n < N; n++)
        rtn_quantize_row(&w[size_t(n) * K], K, sc, &q2[size_t(n) * K], &s2[size_t(n) * G], &z2[size_t(n) * G]);
      EXPECT_EQ(q1, q2);
      EXPECT_EQ(s1, s2);
      EXPECT_EQ(z1, z2);
    }
}

TEST(Gptq, InverseCholeskyFactorsTheDampedInverse) {
  const int K = 48, M = 200;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  std::vector<float> x(size_t(M) * K), H(size_t(K) * K, 0.f);
  for (auto& v : x) v = nd(rng);
  accumulate_xtx_upper(x.data(), M, K, H.data());
  for (int i = 0; i < K; i++)
    for (int j = 0; j < i; j++) H[size_t(i) * K + j] = H[size_t(j) * K + i];
  const double damp = 0.01;
  double mean = 0;
  for (int i = 0; i < K; i++) mean += H[size_t(i) * K + i];
  mean /= K;
  const auto U = gptq_inverse_cholesky(H, K, damp);
  double worst = 0;
  for (int i = 0; i < K; i++)
    for (int j = 0; j < K; j++) {
      if (j < i) {
        EXPECT_EQ(U[size_t(i) * K + j], 0.0);
      }
      // (U^T U)(H + lambda I) = I
      double s = 0;
      for (int k = 0; k < K; k++) {
        double utu = 0;
        for (int r = 0; r <= std::min(i, k); r++) utu += U[size_t(r) * K + i] * U[size_t(r) * K + k];
        s += utu * (double(H[size_t(k) * K + j]) + (k == j ? damp * mean : 0.0));
      }
      worst = std::max(worst, std::fabs(s - (i == j ? 1.0 : 0.0)));
    }
  EXPECT_LT(worst, 1e-8);
}

TEST(Gptq, LowerOutputErrorThanRtnOnCorrelatedInputs) {
  const int N = 32, K = 128, M = 512;
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  // Correlated inputs (a random mix of a few latent directions), as real activations are.
  std::vector<float> lat(size_t(M) * 8), mix(size_t(8) * K), x(size_t(M) * K);
  for (auto& v : lat) v = nd(rng);
  for (auto& v : mix) v = nd(rng);
  for (int m = 0; m < M; m++)
    for (int k = 0; k < K; k++) {
      float s = 0.1f * nd(rng);
      for (int l = 0; l < 8; l++) s += lat[size_t(m) * 8 + l] * mix[size_t(l) * K + k];
      x[size_t(m) * K + k] = s;
    }
  std::vector<float> H(size_t(K) * K, 0.f);
  accumulate_xtx_upper(x.data(), M, K, H.data());
  for (int i = 0; i < K; i++)
    for (int j = 0; j < i; j++) H[size_t(i) * K + j] = H[size_t(j) * K + i];
  const auto w = random_weights(N, K, 21);
  for (bool sym : {true, false}) {
    const Int4Scheme sc{32, sym};
    const int G = K / 32;
    auto out_err = [&](const std::vector<int8_t>& q, const std::vector<uint16_t>& s, const std::vector<int8_t>& z) {
      double e = 0;
      for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
          double d = 0;
          for (int k = 0; k < K; k++) {
            const size_t g = size_t(n) * G + k / 32;
            d += x[size_t(m) * K + k] * (w[size_t(n) * K + k] - float(q[size_t(n) * K + k] - z[g]) * bf16_to_f32(s[g]));
          }
          e += d * d;
        }
      return e;
    };
    std::vector<int8_t> qg(size_t(N) * K), qr(qg.size()), zg(size_t(N) * G), zr(zg.size());
    std::vector<uint16_t> sg(size_t(N) * G), sr(sg.size());
    gptq_quantize(w.data(), N, K, H, sc, GptqOptions{}, qg.data(), sg.data(), zg.data());
    for (int n = 0; n < N; n++)
      rtn_quantize_row(&w[size_t(n) * K], K, sc, &qr[size_t(n) * K], &sr[size_t(n) * G], &zr[size_t(n) * G]);
    const double eg = out_err(qg, sg, zg), er = out_err(qr, sr, zr);
    EXPECT_LT(eg, 0.8 * er) << (sym ? "symmetric" : "asymmetric") << " gptq " << eg << " rtn " << er;
  }
}

TEST(HessianCapture, RecordsLayerInputsAndRoutedExpertRows) {
  for (const std::string m : {"llama", "qwen3_moe"}) {
    const std::string dir = test::fixtures_dir() + "/models/" + m;
    auto model = Model::load(dir);
    TensorStore st = TensorStore::open(dir);
    QuantizeOptions opt;
    const auto targets = modules_to_quantize(st, test::read_text(dir + "/config.json"), opt, nullptr);
    auto cap = std::make_unique<HessianCaptureBackend>(make_cpu_backend(), model->weights(), targets);
    HessianCaptureBackend* c = cap.get();
    model->set_backend(std::move(cap));
    const std::vector<int> ids = {5, 17, 200, 33, 9, 411, 77, 3, 128, 64, 2};
    const int T = int(ids.size()), D = model->config().d_model;
    KvCache kv = model->new_cache(T);
    std::vector<float> logits(size_t(T) * model->config().n_vocab);
    model->forward(ids.data(), T, kv, logits.data());
    auto hs = c->take();
    for (const auto& t : targets) EXPECT_TRUE(hs.count(t) || t.find(".experts.") != std::string::npos) << m << " " << t;
    if (m == "llama") {
      // Layer 0's q/k/v input is rms_norm(embedding rows): H must be X^T X of exactly that.
      const LayerWeights& L0 = model->weights().layers[0];
      std::vector<float> x(size_t(T) * D), xn(x.size()), Href(size_t(D) * D, 0.f);
      for (int t = 0; t < T; t++) decode_weight_row(model->weights().embed, ids[size_t(t)], &x[size_t(t) * D]);
      rms_norm_f32(x.data(), L0.attn_norm.data(), T, D, float(model->config().rms_norm_eps), xn.data());
      for (int t = 0; t < T; t++)
        for (int i = 0; i < D; i++)
          for (int j = 0; j < D; j++) Href[size_t(i) * D + j] += xn[size_t(t) * D + i] * xn[size_t(t) * D + j];
      for (const char* p : {"q_proj", "k_proj", "v_proj"}) {
        const InputHessian& h = hs.at(std::string("model.layers.0.self_attn.") + p);
        EXPECT_EQ(h.n_rows, T);
        EXPECT_LT(test::rel_err(h.H.data(), Href.data(), Href.size()), 1e-5) << p;
      }
    } else {
      // Each token reaches top_k experts: the experts' gate rows of a layer sum to T * top_k.
      const int E = model->config().n_experts, k = model->config().n_experts_per_tok;
      long long rows = 0;
      for (int e = 0; e < E; e++) {
        auto it = hs.find("model.layers.0.mlp.experts." + std::to_string(e) + ".gate_proj");
        if (it != hs.end()) rows += it->second.n_rows;
      }
      EXPECT_EQ(rows, (long long)T * k);
    }
  }
}

TEST(QuantizeCheckpoint, ShardedOutputReadsBackAsTheSingleFile) {
  const std::string src = test::fixtures_dir() + "/models/qwen3_moe";
  test::TempDir d;
  QuantizeOptions opt;
  opt.progress = false;
  opt.scheme.symmetric = false;
  quantize_checkpoint(src, d.path + "/one", opt);
  opt.max_shard_bytes = 64 << 10;
  const QuantizeSummary s = quantize_checkpoint(src, d.path + "/many", opt);
  EXPECT_GT(s.n_shards, 3);
  test::expect_same_tensors(d.path + "/many", d.path + "/one");
  // And the asymmetric output dequantises to within a step of the original everywhere.
  dequantize_checkpoint(d.path + "/one", d.path + "/deq", DType::F32);
  TensorStore a = TensorStore::open(src), b = TensorStore::open(d.path + "/deq");
  for (const auto& t : s.tensors) {
    const TensorView& ta = a.get(t.module + ".weight");
    const TensorView& tb = b.get(t.module + ".weight");
    ASSERT_EQ(tb.dtype, DType::F32);
    std::vector<float> wa(size_t(ta.numel()));
    for (size_t i = 0; i < wa.size(); i++) {
      uint16_t h;
      std::memcpy(&h, ta.data + 2 * i, 2);
      wa[i] = bf16_to_f32(h);
    }
    EXPECT_NEAR(test::rel_err(reinterpret_cast<const float*>(tb.data), wa.data(), wa.size()), t.rel_err, 1e-6)
        << t.module;
  }
}

TEST(Perplexity, MatchesTheReferenceLogitsOfAFixturePrompt) {
  // One chunk of the whole 50-token prompt: positions 25..48 scored against the HF logits.
  const auto fx = test::manifest();
  const auto it = std::find_if(fx.begin(), fx.end(), [](const test::FixtureCase& c) { return c.name == "llama"; });
  ASSERT_NE(it, fx.end());
  TensorStore ref = TensorStore::open(it->reference);
  const std::vector<int> ids = test::read_i32(ref, "prompt_2.input_ids");
  const std::vector<float> logits = test::read_f32(ref, "prompt_2.logits");
  auto model = Model::load(it->model_dir);
  const int T = int(ids.size()), V = model->config().n_vocab;
  double nll = 0;
  int n = 0;
  for (int i = T / 2; i < T - 1; i++, n++) {
    const float* row = &logits[size_t(i) * V];
    double mx = row[0], z = 0;
    for (int v = 0; v < V; v++) mx = std::max(mx, double(row[v]));
    for (int v = 0; v < V; v++) z += std::exp(double(row[v]) - mx);
    nll -= double(row[ids[size_t(i + 1)]]) - mx - std::log(z);
  }
  PerplexityOptions po;
  po.ctx = T;
  po.progress = false;
  const PerplexityResult r = perplexity(*model, ids, po);
  EXPECT_EQ(r.n_chunks, 1);
  EXPECT_EQ(r.scored, n);
  EXPECT_NEAR(r.ppl, std::exp(nll / n), 1e-4 * std::exp(nll / n));
}

}  // namespace
}  // namespace strata
