"""Interop check: the PyPI `compressed-tensors` library decompresses checkpoints written by
`strata quantize` (symmetric and asymmetric, group 32 and 128) to exactly Strata's own
dequantised weights. Not a Strata test runner: the cases are made beforehand (make_interop_cases.sh)
and this runs where PyTorch is (the lent GPU machine, offline: wheels are installed from a folder).

usage: python3 ct_interop.py CASES_DIR WHEELS_DIR OUT_JSON
Each CASES_DIR/<case>/ holds strata/ (`strata quantize` output) and strata_dequant_f32/
(`strata export --dtype f32` of it: Strata's dequantisation (q - z) * s in f32).
Two checks, each with the compressed-tensors release it needs, installed in its own folder:
  decompress:   compressed-tensors 0.13.0's PackedQuantizationCompressor.decompress on every case;
  transformers: transformers' from_pretrained (needs compressed-tensors >= 0.15; 0.20.1 here) on
                the dense-Llama cases, weights compared, and for group-32 symmetric the logits
                against the fixture reference (CASES_DIR/llama_int4_reference.safetensors)."""
import importlib, json, os, subprocess, sys, time, traceback


def ensure_packages(wheels, ct_version):
    """Installs compressed-tensors (and loguru / pydantic 2 / psutil where missing) from `wheels`."""
    target = "/tmp/ct_interop_site_" + ct_version
    need = ["compressed-tensors==" + ct_version]
    try:
        importlib.import_module("psutil")
    except ImportError:
        need.append("psutil")
    try:
        importlib.import_module("loguru")
    except ImportError:
        need.append("loguru")
    try:
        import pydantic
        if int(pydantic.VERSION.split(".")[0]) < 2:
            raise ImportError
    except ImportError:
        need += ["pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions"]
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--find-links", wheels,
           "--target", target] + need
    subprocess.run(cmd, check=True)
    sys.path.insert(0, target)
    return need


def load_st(path):
    from safetensors import safe_open
    out = {}
    with safe_open(path, framework="pt") as f:
        for k in f.keys():
            out[k] = f.get_tensor(k)
    return out


def check_case(case_dir):
    import torch
    from compressed_tensors.compressors import ModelCompressor
    sdir = os.path.join(case_dir, "strata")
    qcfg = json.load(open(os.path.join(sdir, "config.json")))["quantization_config"]
    mc = ModelCompressor.from_compression_config(qcfg)
    comp = mc.quantization_compressor
    if isinstance(comp, dict):  # newer releases keep one compressor per format
        comp = comp[qcfg["format"]]
    scheme = mc.quantization_config.config_groups["group_0"]
    packed = load_st(os.path.join(sdir, "model.safetensors"))
    modules = sorted(k[: -len(".weight_packed")] for k in packed if k.endswith(".weight_packed"))
    ref = load_st(os.path.join(case_dir, "strata_dequant_f32", "model.safetensors"))
    res = {"modules": len(modules), "format": qcfg["format"],
           "group_size": qcfg["config_groups"]["group_0"]["weights"]["group_size"],
           "symmetric": qcfg["config_groups"]["group_0"]["weights"]["symmetric"],
           "has_zero_points": any(k.endswith(".weight_zero_point") for k in packed),
           "exact_bf16": 0, "mismatched": [], "max_abs_diff_vs_strata_f32": 0.0, "elements": 0}
    seen = set()
    for name, data in comp.decompress(sdir, names_to_scheme={m: scheme for m in modules}):
        w = data["weight"]
        r = ref[name + ".weight"]
        seen.add(name)
        # compressed-tensors multiplies in the scale's dtype (bf16): its result is Strata's f32
        # product rounded to bf16, so equality is asked of exactly that.
        if w.dtype == r.to(w.dtype).dtype and w.shape == r.shape and torch.equal(w, r.to(w.dtype)):
            res["exact_bf16"] += 1
        else:
            res["mismatched"].append(name)
        res["max_abs_diff_vs_strata_f32"] = max(res["max_abs_diff_vs_strata_f32"],
                                                (w.float() - r.float()).abs().max().item())
        res["elements"] += w.numel()
        res["decompressed_dtype"] = str(w.dtype)
    res["not_decompressed"] = sorted(set(modules) - seen)
    res["pass"] = res["exact_bf16"] == len(modules) and not res["not_decompressed"] and len(modules) > 0
    return res


def transformers_load(case_dir):
    """transformers + compressed-tensors loading the same directory as a model (decompressed)."""
    import torch
    from transformers import AutoModelForCausalLM
    sdir = os.path.join(case_dir, "strata")
    try:
        from transformers import CompressedTensorsConfig
        m = AutoModelForCausalLM.from_pretrained(sdir, quantization_config=CompressedTensorsConfig(run_compressed=False),
                                                 dtype=torch.bfloat16)
    except ImportError:
        m = AutoModelForCausalLM.from_pretrained(sdir, dtype=torch.bfloat16)
    sd = m.state_dict()
    ref = load_st(os.path.join(case_dir, "strata_dequant_f32", "model.safetensors"))
    checked = exact = 0
    for k, r in ref.items():
        if k in sd and sd[k].shape == r.shape and k.endswith("_proj.weight"):
            checked += 1
            exact += int(torch.equal(sd[k].to(torch.bfloat16), r.to(torch.bfloat16)))
    res = {"weights_checked": checked, "exact_bf16": exact, "pass": checked > 0 and checked == exact}
    refpath = os.path.join(os.path.dirname(case_dir), "llama_int4_reference.safetensors")
    if os.path.basename(case_dir) == "llama_g32_symmetric" and os.path.exists(refpath):
        # Bit-identical to the llama_int4 fixture, so transformers must give its reference logits.
        ref_logits = load_st(refpath)
        m = m.float().eval()
        worst = 0.0
        for i in range(3):
            ids = ref_logits[f"prompt_{i}.input_ids"].long()[None]
            with torch.no_grad():
                out = m(ids).logits[0].float()
            want = ref_logits[f"prompt_{i}.logits"].float()
            worst = max(worst, ((out - want).norm() / want.norm()).item())
        res["logits_rel_err_vs_fixture_reference"] = worst
        res["pass"] = res["pass"] and worst < 1e-2  # bf16 decompression rounds (q - z) * s
    return res


def versions():
    import compressed_tensors, torch, transformers
    return {"compressed_tensors": compressed_tensors.__version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "python": sys.version.split()[0]}


def cases_of(cases_dir):
    return [c for c in sorted(os.listdir(cases_dir)) if os.path.isdir(os.path.join(cases_dir, c, "strata"))]


def transformers_phase(cases_dir, wheels, out_json):
    report = {"installed_from_wheels": ensure_packages(wheels, "0.20.1"), "versions": versions(), "cases": {}}
    for case in cases_of(cases_dir):
        if not case.startswith("llama_"):  # dense Llama: module names map 1:1 onto the HF model's
            continue
        try:
            report["cases"][case] = transformers_load(os.path.join(cases_dir, case))
        except Exception:
            report["cases"][case] = {"pass": False, "error": traceback.format_exc()[-2000:]}
        print("transformers", case, "pass" if report["cases"][case]["pass"] else "FAIL", flush=True)
    json.dump(report, open(out_json, "w"), indent=2)


def main():
    if sys.argv[1] == "--transformers-phase":
        return transformers_phase(*sys.argv[2:5])
    cases_dir, wheels, out_json = sys.argv[1:4]
    t0 = time.time()
    report = {"decompress": {"installed_from_wheels": ensure_packages(wheels, "0.13.0"), "cases": {}}}
    report["decompress"]["versions"] = versions()
    for case in cases_of(cases_dir):
        try:
            report["decompress"]["cases"][case] = check_case(os.path.join(cases_dir, case))
        except Exception:
            report["decompress"]["cases"][case] = {"pass": False, "error": traceback.format_exc()[-2000:]}
        print("decompress", case, "pass" if report["decompress"]["cases"][case]["pass"] else "FAIL", flush=True)
    # A fresh interpreter: the second compressed-tensors release must not meet the first one's modules.
    tf_json = out_json + ".transformers.json"
    subprocess.run([sys.executable, __file__, "--transformers-phase", cases_dir, wheels, tf_json])
    report["transformers"] = json.load(open(tf_json)) if os.path.exists(tf_json) else {"cases": {}, "error": "no result"}
    dec = report["decompress"]["cases"].values()
    tf = report["transformers"]["cases"].values()
    report["decompress"]["all_pass"] = len(dec) > 0 and all(c["pass"] for c in dec)
    report["transformers"]["all_pass"] = len(tf) > 0 and all(c["pass"] for c in tf)
    report["all_pass"] = report["decompress"]["all_pass"] and report["transformers"]["all_pass"]
    report["seconds"] = round(time.time() - t0, 1)
    with open(out_json, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps({k: (v["all_pass"] if isinstance(v, dict) else v) for k, v in report.items()}, indent=2))
    return 0 if report["all_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
