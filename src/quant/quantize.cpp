// Checkpoint quantisation (quant/quantize.h): plan the output tensors, then stream: read one
// weight, quantise it, write its packed form, forget it.
#include "quant/quantize.h"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/dtype.h"
#include "core/error.h"
#include "core/file.h"
#include "quant/checkpoint_writer.h"
#include "quant/int4_format.h"

namespace strata {

namespace {

using ojson = nlohmann::ordered_json;

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

std::string read_text(const std::string& path) { return read_regular_file(path); }

nlohmann::json parse_config(const std::string& text) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("config.json: ") + e.what());
  }
}

bool is_moe_config(const nlohmann::json& c) {
  for (const char* k : {"num_experts", "n_routed_experts", "num_local_experts"})
    if (c.contains(k) && c[k].is_number_integer() && c[k].get<long>() > 0) return true;
  return false;
}

// Row n of a 2-D tensor [N, K] as f32.
void read_row_f32(const TensorView& t, int n, float* out) {
  const int64_t K = t.shape[1];
  switch (t.dtype) {
    case DType::F32: std::memcpy(out, t.data + size_t(n) * K * 4, size_t(K) * 4); break;
    case DType::BF16:
    case DType::F16:
      for (int64_t k = 0; k < K; k++) {
        uint16_t h;
        std::memcpy(&h, t.data + (size_t(n) * K + k) * 2, 2);
        out[k] = t.dtype == DType::BF16 ? bf16_to_f32(h) : f16_to_f32(h);
      }
      break;
    default: throw Error(t.file + ": " + t.name + " has dtype " + dtype_name(t.dtype) + ", expected BF16/F16/F32");
  }
}

}  // namespace

std::vector<std::string> linear_modules(const TensorStore& store, const std::string& config_json) {
  (void)parse_config(config_json);  // validated here: every architecture's linears look alike
  // Routers count as linears: transformers' DeepseekV3 router is one too (the kimi_k2_int4 fixture
  // quantizes mlp.gate), so whether a router stays bf16 is the ignore list's decision alone.
  std::vector<std::string> out;
  for (const auto& [name, t] : store.tensors()) {
    if (!ends_with(name, ".weight") || t.shape.size() != 2) continue;
    const std::string mod = name.substr(0, name.size() - 7);
    if (mod.find("embed_tokens") != std::string::npos || ends_with(mod, ".wte") || ends_with(mod, "word_embeddings"))
      continue;
    out.push_back(mod);
  }
  return out;
}

std::vector<std::string> default_ignore_list(const std::vector<std::string>& linears, const std::string& config_json) {
  std::vector<std::string> out = {"lm_head"};
  if (!is_moe_config(parse_config(config_json))) return out;
  // Kimi-K2-Thinking's own strings where it has them, so our output diffs cleanly against it.
  const char* rules[] = {
      "re:.*self_attn.*",                        // attention (GQA and MLA projections)
      "re:.*shared_experts.*",                   // DeepSeek / Kimi shared experts
      "re:.*shared_expert\\..*",                 // Qwen-MoE shared expert
      "re:.*mlp\\.(gate|up|gate_up|down)_proj.*",  // dense MLP layers (experts are mlp.experts.*)
      "re:.*mlp\\.gate$",                        // routers (Qwen3-MoE, DeepSeek as Linear)
      "re:.*block_sparse_moe\\.gate$",           // routers (Mixtral, MiniMax-M2)
  };
  for (const char* r : rules) {
    QuantConfig q;
    q.ignore = {r};
    for (const std::string& m : linears)
      if (q.is_ignored(m)) {
        out.push_back(r);
        break;
      }
  }
  return out;
}

std::vector<std::string> modules_to_quantize(const TensorStore& store, const std::string& config_json,
                                             const QuantizeOptions& opt, std::vector<std::string>* ignore_out) {
  const std::vector<std::string> linears = linear_modules(store, config_json);
  QuantConfig q;
  q.ignore = opt.ignore_given ? opt.ignore : default_ignore_list(linears, config_json);
  std::vector<std::string> out;
  for (const std::string& m : linears) {
    if (q.is_ignored(m)) continue;
    const TensorView& t = store.get(m + ".weight");
    STRATA_CHECK(t.shape[1] % opt.scheme.group_size == 0,
                 m + ": in_features " + std::to_string(t.shape[1]) + " is not a multiple of --group-size " +
                     std::to_string(opt.scheme.group_size) +
                     " (compressed-tensors requires whole groups); choose another group size or --ignore it");
    out.push_back(m);
  }
  if (ignore_out) *ignore_out = q.ignore;
  return out;
}

std::string quantization_config_json(const Int4Scheme& scheme, const std::vector<std::string>& ignore) {
  // Key order and values as compressed-tensors' QuantizationConfig serialises them.
  ojson w;
  w["actorder"] = nullptr;
  w["block_structure"] = nullptr;
  w["dynamic"] = false;
  w["group_size"] = scheme.group_size;
  w["num_bits"] = 4;
  w["observer"] = "minmax";
  w["observer_kwargs"] = ojson::object();
  w["strategy"] = "group";
  w["symmetric"] = scheme.symmetric;
  w["type"] = "int";
  ojson g;
  g["input_activations"] = nullptr;
  g["output_activations"] = nullptr;
  g["targets"] = {"Linear"};
  g["weights"] = w;
  ojson q;
  q["config_groups"] = {{"group_0", g}};
  q["format"] = "pack-quantized";
  q["ignore"] = ignore;
  q["kv_cache_scheme"] = nullptr;
  q["quant_method"] = "compressed-tensors";
  q["quantization_status"] = "compressed";
  return q.dump(2);
}

std::string config_with_quantization(const std::string& config_text, const std::string& quantization_config) {
  STRATA_CHECK(!parse_config(config_text).contains("quantization_config"),
               "config.json already has a quantization_config: the input is not a dense checkpoint");
  std::string t = config_text;
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
  STRATA_CHECK(!t.empty() && t.back() == '}', "config.json is not a JSON object");
  t.pop_back();
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
  const bool empty_object = !t.empty() && t.back() == '{';
  std::string nested;  // the object one level deeper: every line but the first gains two spaces
  for (char c : quantization_config) {
    nested += c;
    if (c == '\n') nested += "  ";
  }
  return t + (empty_object ? "\n" : ",\n") + "  \"quantization_config\": " + nested + "\n}";
}

QuantizeSummary quantize_checkpoint(const std::string& in_dir, const std::string& out_dir, const QuantizeOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  STRATA_CHECK(opt.scheme.group_size >= 8 && opt.scheme.group_size % 8 == 0,
               "group size must be a positive multiple of 8");
  const std::string config_text = read_text(in_dir + "/config.json");
  TensorStore store = TensorStore::open(in_dir);
  QuantizeSummary sum;
  const std::vector<std::string> mods = modules_to_quantize(store, config_text, opt, &sum.ignore);
  const std::set<std::string> quant(mods.begin(), mods.end());
  const int gs = opt.scheme.group_size;

  // The plan: every input tensor in store order, a quantised weight replaced by its parts.
  std::vector<PlannedTensor> plan;
  for (const auto& [name, t] : store.tensors()) {
    const std::string mod = ends_with(name, ".weight") ? name.substr(0, name.size() - 7) : "";
    if (!quant.count(mod)) {
      plan.push_back({name, t.dtype, t.shape});
      continue;
    }
    const int64_t N = t.shape[0], K = t.shape[1];
    plan.push_back({mod + ".weight_packed", DType::I32, {N, K / 8}});
    plan.push_back({mod + ".weight_scale", DType::BF16, {N, K / gs}});
    if (!opt.scheme.symmetric) plan.push_back({mod + ".weight_zero_point", DType::I32, {(N + 7) / 8, K / gs}});
    plan.push_back({mod + ".weight_shape", DType::I64, {2}});
  }
  make_dirs(out_dir);
  ShardedSafetensorsWriter out(out_dir, plan, opt.max_shard_bytes);

  size_t done = 0;
  const size_t total = store.tensors().size();
  for (const auto& [name, t] : store.tensors()) {
    const std::string mod = ends_with(name, ".weight") ? name.substr(0, name.size() - 7) : "";
    done++;
    if (!quant.count(mod)) {
      out.write(name, t.data, t.nbytes);
      sum.n_copied++;
      sum.bytes_out += t.nbytes;
      continue;
    }
    const int N = int(t.shape[0]), K = int(t.shape[1]), G = K / gs;
    std::vector<float> W(size_t(N) * K);  // [N, K] f32: the one weight in memory
    for (int n = 0; n < N; n++) read_row_f32(t, n, &W[size_t(n) * K]);
    std::vector<int8_t> q(size_t(N) * K), z(size_t(N) * G);
    std::vector<uint16_t> sc(size_t(N) * G);
    TensorQuantReport rep;
    rep.module = mod;
    rep.n_out = N;
    rep.n_in = K;
    const InputHessian* h = nullptr;
    if (opt.gptq && opt.hessians) {
      auto it = opt.hessians->find(mod);
      if (it != opt.hessians->end() && it->second.n_rows > 0) h = &it->second;
    }
    if (h) {
      STRATA_CHECK(h->K == K, mod + ": calibration Hessian is " + std::to_string(h->K) + " wide, weight has K " +
                                  std::to_string(K));
      gptq_quantize(W.data(), N, K, h->H, opt.scheme, opt.gptq_options, q.data(), sc.data(), z.data());
      rep.gptq = true;
      rep.calib_rows = h->n_rows;
    } else {
#pragma omp parallel for schedule(static)
      for (int n = 0; n < N; n++)
        rtn_quantize_row(&W[size_t(n) * K], K, opt.scheme, &q[size_t(n) * K], &sc[size_t(n) * G], &z[size_t(n) * G]);
    }
    std::vector<uint32_t> packed(size_t(N) * (K / 8));
    double err2 = 0, ref2 = 0;
    for (int n = 0; n < N; n++) {
      pack_int4_row(&q[size_t(n) * K], K, &packed[size_t(n) * (K / 8)]);
      for (int k = 0; k < K; k++) {
        const size_t gi = size_t(n) * G + k / gs;
        const double d = double(q[size_t(n) * K + k] - z[gi]) * bf16_to_f32(sc[gi]);
        const double w = W[size_t(n) * K + k];
        err2 += (w - d) * (w - d);
        ref2 += w * w;
      }
    }
    rep.rel_err = ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
    sum.tensors.push_back(rep);
    out.write(mod + ".weight_packed", packed.data(), packed.size() * 4);
    out.write(mod + ".weight_scale", sc.data(), sc.size() * 2);
    sum.bytes_out += packed.size() * 4 + sc.size() * 2 + 16;
    if (!opt.scheme.symmetric) {
      const std::vector<uint32_t> zp = pack_int4_zeros(z.data(), N, G);
      out.write(mod + ".weight_zero_point", zp.data(), zp.size() * 4);
      sum.bytes_out += zp.size() * 4;
    }
    const int64_t shape[2] = {N, K};
    out.write(mod + ".weight_shape", shape, 16);
    if (opt.progress) {
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const int bar = int(30 * done / total);
      std::fprintf(stderr, "\r[%.*s%*s] %zu/%zu tensors  %.1f s  eta %.0f s  %-48.48s", bar,
                   "##############################", 30 - bar, "", done, total, el,
                   el / double(done) * double(total - done), mod.c_str());
    }
  }
  out.finish();
  if (opt.progress) std::fprintf(stderr, "\n");
  sum.n_shards = out.n_shards();
  const std::string cfg = config_with_quantization(config_text, quantization_config_json(opt.scheme, sum.ignore));
  std::ofstream cf(out_dir + "/config.json", std::ios::binary);
  cf << cfg;
  cf.close();
  STRATA_CHECK(cf.good(), "write error on " + out_dir + "/config.json");
  copy_side_files(in_dir, out_dir);
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

std::string quantize_summary_json(const QuantizeSummary& s) {
  ojson j;
  j["ignore"] = s.ignore;
  j["quantized"] = s.tensors.size();
  j["copied"] = s.n_copied;
  j["shards"] = s.n_shards;
  j["bytes_out"] = s.bytes_out;
  j["seconds"] = s.seconds;
  double mean = 0, worst = 0;
  ojson ts = ojson::array();
  for (const auto& t : s.tensors) {
    mean += t.rel_err;
    worst = std::max(worst, t.rel_err);
    ts.push_back({{"module", t.module}, {"shape", {t.n_out, t.n_in}}, {"rel_err", t.rel_err},
                  {"method", t.gptq ? "gptq" : "rtn"}, {"calib_rows", t.calib_rows}});
  }
  j["rel_err_mean"] = s.tensors.empty() ? 0.0 : mean / double(s.tensors.size());
  j["rel_err_max"] = worst;
  j["tensors"] = ts;
  return j.dump(2);
}

}  // namespace strata
