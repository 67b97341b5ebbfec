"""Interop check: the PyPI `compressed-tensors` library decompresses checkpoints written by
`strata quantize` (symmetric and asymmetric, group 32 and 128) to exactly Strata's own
dequantised weights. Not a Strata test runner: the cases are made beforehand (make_interop_cases.sh)
and this runs where PyTorch is (the lent GPU machine, offline: wheels are installed from a folder).

usage: python3 ct_interop.py CASES_DIR WHEELS_DIR OUT_JSON
Each CASES_DIR/<case>/ holds strata/ (`strata quantize` output) and strata_dequant_f32/
(`strata export --dtype f32` of it: Strata's dequantisation (q - z) * s in f32)."""
import importlib, json, os, subprocess, sys, time, traceback


def ensure_packages(wheels):
    """Installs compressed-tensors (and loguru / pydantic 2 where missing) from `wheels`, offline."""
    target = "/tmp/ct_interop_site"
    need = ["compressed-tensors==0.13.0"]
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
                                                 torch_dtype=torch.bfloat16)
    except ImportError:
        m = AutoModelForCausalLM.from_pretrained(sdir, torch_dtype=torch.bfloat16)
    sd = m.state_dict()
    ref = load_st(os.path.join(case_dir, "strata_dequant_f32", "model.safetensors"))
    checked = exact = 0
    for k, r in ref.items():
        if k in sd and sd[k].shape == r.shape and k.endswith("_proj.weight"):
            checked += 1
            exact += int(torch.equal(sd[k].to(torch.bfloat16), r.to(torch.bfloat16)))
    return {"weights_checked": checked, "exact_bf16": exact, "pass": checked > 0 and checked == exact}


def main():
    cases_dir, wheels, out_json = sys.argv[1:4]
    t0 = time.time()
    report = {"installed_from_wheels": ensure_packages(wheels), "cases": {}}
    import compressed_tensors, torch, transformers
    report["versions"] = {"compressed_tensors": compressed_tensors.__version__, "torch": torch.__version__,
                          "transformers": transformers.__version__, "python": sys.version.split()[0]}
    for case in sorted(os.listdir(cases_dir)):
        if not os.path.isdir(os.path.join(cases_dir, case, "strata")):
            continue
        try:
            report["cases"][case] = check_case(os.path.join(cases_dir, case))
        except Exception:
            report["cases"][case] = {"pass": False, "error": traceback.format_exc()[-2000:]}
        if case.startswith("llama_"):
            try:
                report["cases"][case]["transformers_load"] = transformers_load(os.path.join(cases_dir, case))
            except Exception:
                report["cases"][case]["transformers_load"] = {"pass": False, "error": traceback.format_exc()[-2000:]}
        print(case, "pass" if report["cases"][case]["pass"] else "FAIL", flush=True)
    report["all_pass"] = all(c["pass"] for c in report["cases"].values()) and len(report["cases"]) > 0
    report["seconds"] = round(time.time() - t0, 1)
    with open(out_json, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps({k: v for k, v in report.items() if k != "cases"}, indent=2))
    return 0 if report["all_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
