#!/usr/bin/env python3
"""Writes bench/results/serving.md from the JSON that bench/serving/run.sh leaves in
bench/results/serving/ (loadgen.py and mixed.py outputs). Standard library only."""
import argparse
import datetime
import glob
import json
import os
import platform
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadgen as lg  # noqa: E402
import mixed  # noqa: E402


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception:
        return "?"


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def ratio(a, b, d=2):
    return "-" if a is None or b is None or b == 0 else f"{a / b:.{d}f}x"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--model", default="?")
    ap.add_argument("--moe-model", default="?")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--ctx", default="?")
    ap.add_argument("--llama-version", default="?")
    ap.add_argument("--omp-wait", default="?")
    ap.add_argument("--runtime-s", default="?")
    a = ap.parse_args()
    R = a.results
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    git = sh("git", "-C", root, "rev-parse", "--short", "HEAD")
    dirty = sh("git", "-C", root, "status", "--porcelain", "--", "src", "CMakeLists.txt")
    L = []
    L.append("# Serving benchmark: Strata vs llama.cpp llama-server")
    L.append("")
    L.append(f"Run {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC by `bash bench/serving/run.sh` "
             f"({a.runtime_s} s in all). Strata {git}{' (src modified)' if dirty else ''}; "
             f"llama.cpp: {a.llama_version.strip()} (llama-cpp-python 0.3.36 sdist, built by bench/llamacpp/build.sh).")
    L.append(f"Machine: {os.cpu_count()} cpus, {cpu_model()}, {platform.system()} {platform.release()}. "
             f"**Shared machine**: other jobs ran alongside; the load average before/after each point is "
             f"in the tables. Numbers move by 10-30 % between runs on this box.")
    L.append("")
    L.append(f"Model: `{os.path.basename(a.model)}` (the same file for both servers), {a.threads} threads each, "
             f"context {a.ctx}, greedy (temperature 0), `ignore_eos: true` (so every request generates max_tokens; "
             f"the actual counts from `usage` are in the `out tok/req` column), distinct raw-text slices of "
             f"moby-dick.txt as prompts on `/v1/completions`, streamed with `stream_options.include_usage`. "
             f"Both servers run with OMP_WAIT_POLICY={a.omp_wait} (both use libgomp; Strata's tests do the same "
             f"on 2 cores: spinning OpenMP workers starve the HTTP threads and collapse when other jobs share the cores). llama-server runs 4 slots (`-np 4 --kv-unified`), "
             f"Strata its default chunked scheduler (512 step tokens, max 64 running"
             + (f", step-time target {os.environ['STEP_TARGET_MS']} ms" if os.environ.get("STEP_TARGET_MS", "0") not in ("", "0") else "")
             + ").")
    L.append("")
    L.append("TTFT: send to first streamed text chunk. TBT: gaps between consecutive text chunks of a request "
             "(pooled). TPOT: per request (end - first chunk) / (tokens - 1). out tok/s and req/s over the "
             "point's wall time (first send to last end). Closed loop at concurrency c (c workers, each "
             "sends its next request when the previous ended); Poisson: open-loop arrivals.")
    L.append("")
    points = {}
    for p in sorted(glob.glob(os.path.join(R, "*.json"))):
        name = os.path.basename(p)[:-5]
        if name.startswith("moe-"):
            continue
        d = json.load(open(p))["summary"]
        label, tag = name.rsplit("-", 1)
        points.setdefault(tag, {})[label] = d
    order = sorted(points, key=lambda t: (t == "poisson", int(t[1:]) if t.startswith("c") else 0))
    if points:
        L.append("## SmolLM2-135M-Instruct Q4_1: Strata vs llama-server")
        L.append("")
        L.append(lg.MD_HEADER.splitlines()[0] + " load avg before -> after |")
        L.append(lg.MD_HEADER.splitlines()[1] + "---|")
        for t in order:
            for label in ("strata", "llama-server"):
                if label in points[t]:
                    s = points[t][label]
                    L.append(lg.md_row(label, s["load"], s) +
                             f" {s.get('loadavg_before', '?')} -> {s.get('loadavg_after', '?')} |")
        L.append("")
        L.append("Ratios Strata / llama-server (latency: < 1 means Strata is faster; throughput: > 1 means Strata is faster):")
        L.append("")
        L.append("| load | TTFT p50 | TTFT p99 | TBT p50 | TBT p99 | TPOT p50 | e2e p50 | out tok/s |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for t in order:
            if "strata" in points[t] and "llama-server" in points[t]:
                s, l = points[t]["strata"], points[t]["llama-server"]
                L.append(f"| {s['load']} | {ratio(s['ttft_ms']['p50'], l['ttft_ms']['p50'])} | "
                         f"{ratio(s['ttft_ms']['p99'], l['ttft_ms']['p99'])} | "
                         f"{ratio(s['tbt_ms']['p50'], l['tbt_ms']['p50'])} | {ratio(s['tbt_ms']['p99'], l['tbt_ms']['p99'])} | "
                         f"{ratio(s['tpot_ms']['p50'], l['tpot_ms']['p50'])} | {ratio(s['e2e_ms']['p50'], l['e2e_ms']['p50'])} | "
                         f"{ratio(s['output_tokens_per_s'], l['output_tokens_per_s'])} |")
        L.append("")
        errs = {f"{lab} {t}": points[t][lab]["error_kinds"] for t in order for lab in points[t] if points[t][lab]["errors"]}
        L.append("Errors: " + (json.dumps(errs) if errs else "none") + ".")
        L.append("")
    moe = {}  # scenario -> policy -> result
    for p in sorted(glob.glob(os.path.join(R, "moe-*.json"))):
        d = json.load(open(p))["result"]
        moe.setdefault(d.get("scenario", "mixed"), {})[d["label"]] = d
    if moe:
        cfg = {sc: next(iter(v.values()))["config"] for sc, v in moe.items()}
        L.append(f"## Layered vs chunked prefill: `{os.path.basename(a.moe_model.rstrip('/'))}` fixture (MoE)")
        L.append("")
        when = max(os.path.getmtime(p) for p in glob.glob(os.path.join(R, "moe-*.json")))
        L.append(f"Measured {datetime.datetime.utcfromtimestamp(when):%Y-%m-%d %H:%M} UTC.")
        L.append("")
        L.append("`bench/serving/mixed.py`, two scenarios on a fresh `strata serve` per policy "
                 "(`--scheduler chunked`: 512 step tokens; `--scheduler layered`: its default budget, layer groups "
                 "automatic):")
        for sc, c in cfg.items():
            if c["decoders"]:
                L.append(f"- **{sc}**: {c['decoders']} streams decode {c['decode_tokens']} tokens (ignore_eos) from "
                         f"short prompts; once all stream, {c['long_prompts']} long prompts ({c['long_chars']} "
                         f"characters each, max_tokens {c['long_max_tokens']}) arrive {c['interval']} s apart.")
            else:
                L.append(f"- **{sc}**: no decoders; {c['long_prompts']} long prompts ({c['long_chars']} characters "
                         f"each, max_tokens {c['long_max_tokens']}) arrive {c['interval']} s apart.")
        L.append("")
        L.append("Counters are deltas of Strata's /metrics over the measured part (warm-up excluded): expert MB = "
                 "strata_expert_bytes_total, steps = strata_engine_steps_total.")
        L.append("")
        L.append("**The fixture is a tiny random model** (hidden 128, 3 layers, 8 experts, top-2): its timings "
                 "measure scheduling and per-step overheads on a shared 2-core machine, not a real model's "
                 "prefill/decode costs. The expert-byte counts (MoE expert weight bytes read by all steps) are "
                 "the meaningful part.")
        L.append("")
        L.append(mixed.MD_HEADER)
        for sc in moe:
            for pol in ("chunked", "layered", "chunked+layered", "none"):
                if pol in moe[sc]:
                    L.append(mixed.md_row(moe[sc][pol]))
        L.append("")
        for sc in moe:
            if "chunked" in moe[sc] and "layered" in moe[sc]:
                c, y = moe[sc]["chunked"], moe[sc]["layered"]
                cm, ym = c["metrics_delta"], y["metrics_delta"]
                L.append(f"- {sc}, layered / chunked: expert bytes "
                         f"{ratio(ym.get('strata_expert_bytes_total'), cm.get('strata_expert_bytes_total'))}, steps "
                         f"{ratio(ym.get('strata_engine_steps_total'), cm.get('strata_engine_steps_total'))}, long-prompt "
                         f"TTFT p50 {ratio(y['long_ttft_ms']['p50'], c['long_ttft_ms']['p50'])}"
                         + (f", decode TBT max during long prefills "
                            f"{ratio(y['decode_tbt_during_ms']['max'], c['decode_tbt_during_ms']['max'])}"
                            if c['decode_tbt_during_ms']['n'] else "") + ".")
        L.append("")
        for sc in moe:
            for pol, d in moe[sc].items():
                L.append(f"- {sc}/{pol}: long prompts {d['long_prompt_tokens']} tokens; decoders generated "
                         f"{d['decode_tokens']} tokens, outlived the long prompts: {d['decoders_outlived_long_prompts']}; "
                         f"load avg {d.get('loadavg_before', '?')} -> {d.get('loadavg_after', '?')}; errors {d['errors']}.")
        L.append("")
    cmds = os.path.join(R, "commands.txt")
    if os.path.exists(cmds):
        L.append("## Exact commands")
        L.append("")
        L.append("```")
        L.extend(open(cmds).read().rstrip().splitlines())
        L.append("```")
        L.append("")
    L.append(f"Raw per-request timelines: `bench/results/{os.path.basename(os.path.normpath(R))}/*.json`.")
    open(a.out, "w").write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
