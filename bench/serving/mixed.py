#!/usr/bin/env python3
"""Mixed serving workload for comparing prefill scheduling policies (e.g. Strata's chunked vs
layered prefill): D long-decoding streams run while L long prompts arrive one after another.

  decoders : D requests, short prompt, --decode-tokens (ignore_eos), all started first;
  arrivals : once every decoder streams, L long prompts (--long-chars) with --long-max-tokens,
             sent every --interval seconds (or as Poisson arrivals with --rate).

Reports the long prompts' TTFT, the decoders' TBT (all gaps, and the gaps that end while some long
prompt is in flight: the stall a prefill puts on running decodes), and, from the server's
Prometheus /metrics when it has them (Strata), the deltas of strata_expert_bytes_total,
strata_engine_steps_total, strata_prompt_tokens_total and strata_generation_tokens_total.
Standard library only; reuses loadgen.py.

Usage: python3 bench/serving/mixed.py --url http://127.0.0.1:8000 --label chunked [--json-out F] [--md-row]
"""
import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadgen as lg  # noqa: E402

METRICS = ("strata_expert_bytes_total", "strata_engine_steps_total", "strata_prompt_tokens_total",
           "strata_generation_tokens_total", "strata_preemptions_total")


def scrape(client):
    try:
        st, body = client.get("/metrics")
    except OSError:
        return {}
    if st != 200:
        return {}
    out = {}
    for line in body.decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in METRICS:
            out[parts[0]] = float(parts[1])
    return out


MD_HEADER = ("| scenario | policy | long TTFT p50/max ms | decode TBT p50/p99/max ms | decode TBT during long prefills p50/p99/max ms "
             "| expert MB | steps | expert MB/step | prompt tok | gen tok | errors |\n"
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def md_row(r):
    f = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"
    m = r["metrics_delta"]
    eb, steps = m.get("strata_expert_bytes_total"), m.get("strata_engine_steps_total")
    return (f"| {r.get('scenario', '')} | {r['label']} | {f(r['long_ttft_ms']['p50'])}/{f(r['long_ttft_ms']['max'])} | "
            f"{f(r['decode_tbt_ms']['p50'])}/{f(r['decode_tbt_ms']['p99'])}/{f(r['decode_tbt_ms']['max'])} | "
            f"{f(r['decode_tbt_during_ms']['p50'])}/{f(r['decode_tbt_during_ms']['p99'])}/{f(r['decode_tbt_during_ms']['max'])} | "
            f"{f(eb / 1e6 if eb is not None else None, 1)} | {f(steps, 0)} | "
            f"{f(eb / steps / 1e6 if eb and steps else None, 2)} | {f(m.get('strata_prompt_tokens_total'), 0)} | "
            f"{f(m.get('strata_generation_tokens_total'), 0)} | {r['errors']} |")


def stats_ms(xs):
    return {"p50": None if not xs else 1000 * lg.percentile(xs, 50), "p99": None if not xs else 1000 * lg.percentile(xs, 99),
            "max": None if not xs else 1000 * max(xs), "n": len(xs)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--corpus", default=lg.DEFAULT_CORPUS)
    ap.add_argument("--decoders", type=int, default=3)
    ap.add_argument("--decode-chars", type=int, default=200)
    ap.add_argument("--decode-tokens", type=int, default=768)
    ap.add_argument("--long-prompts", type=int, default=4)
    ap.add_argument("--long-chars", type=int, default=8000)
    ap.add_argument("--long-max-tokens", type=int, default=4)
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between long prompts")
    ap.add_argument("--rate", type=float, default=None, help="Poisson arrivals per second instead of --interval")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--label", default="server")
    ap.add_argument("--scenario", default="mixed", help="name stored with the result")
    ap.add_argument("--json-out", default=None)
    ap.add_argument("--md-row", action="store_true")
    ap.add_argument("--md-header", action="store_true")
    a = ap.parse_args(argv)

    client = lg.Client(a.url, None, a.api_key, "completions", 600.0, True, True)
    client.discover_model()
    dprompts = lg.make_prompts(a.corpus, a.decoders, a.decode_chars, a.seed)
    lprompts = lg.make_prompts(a.corpus, a.long_prompts, a.long_chars, a.seed + 1000)
    # warm up (first-touch of weights, thread pools) with a prompt nobody else uses
    w = lg.RequestRecord(-1, "warmup")
    client.run(w, lg.make_prompts(a.corpus, 1, 400, a.seed + 7)[0], 4)
    before = scrape(client)

    drecs = [lg.RequestRecord(i, "decode") for i in range(a.decoders)]
    dth = [threading.Thread(target=client.run, args=(drecs[i], dprompts[i], a.decode_tokens), daemon=True)
           for i in range(a.decoders)]
    t0 = time.perf_counter()
    for t in dth:
        t.start()
    deadline = time.time() + 120
    while time.time() < deadline and not all(r.chunks or r.end for r in drecs):
        time.sleep(0.005)
    time.sleep(0.1)  # a few decode steps in steady state
    if a.rate:
        lrecs = lg.run_poisson(client, lprompts, a.long_max_tokens, a.rate, a.seed, group="long")
    else:
        lrecs = [lg.RequestRecord(i, "long") for i in range(a.long_prompts)]
        lth = []
        for i, p in enumerate(lprompts):
            if i:
                time.sleep(a.interval)
            th = threading.Thread(target=client.run, args=(lrecs[i], p, a.long_max_tokens), daemon=True)
            th.start()
            lth.append(th)
        for th in lth:
            th.join()
    long_done = time.perf_counter()
    for t in dth:
        t.join()
    after = scrape(client)

    # windows in which at least one long prompt was in flight (send .. end)
    wins = sorted((r.send, r.end) for r in lrecs if r.send is not None and r.end is not None)
    inside = lambda t: any(s <= t <= e for s, e in wins)
    gaps_all, gaps_during = [], []
    for r in drecs:
        for x, y in zip(r.chunks, r.chunks[1:]):
            gaps_all.append(y - x)
            if inside(y):
                gaps_during.append(y - x)
    decoders_outlived = all(r.end is not None and r.end >= long_done for r in drecs)
    res = {
        "label": a.label,
        "scenario": a.scenario,
        "long_ttft_ms": stats_ms([r.ttft() for r in lrecs if r.ok and r.ttft() is not None]),
        "long_prompt_tokens": [r.prompt_tokens for r in lrecs],
        "decode_tbt_ms": stats_ms(gaps_all),
        "decode_tbt_during_ms": stats_ms(gaps_during),
        "decode_tokens": [r.n_out() for r in drecs],
        "decoders_outlived_long_prompts": decoders_outlived,
        "errors": sum(1 for r in drecs + lrecs if not r.ok),
        "error_details": [r.error for r in drecs + lrecs if not r.ok],
        "metrics_delta": {k: after[k] - before.get(k, 0.0) for k in after},
        "wall_s": time.perf_counter() - t0,
        "config": {k: lg.repo_path(v) if k in ("corpus", "json_out") else v for k, v in vars(a).items()},
    }
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"result": res, "records": [r.to_json(t0) for r in drecs + lrecs]}, f, indent=1)
    for e in res["error_details"]:
        print("mixed: request failed:", e, file=sys.stderr)
    if not decoders_outlived:
        print("mixed: warning: a decoder finished before the last long prompt; raise --decode-tokens", file=sys.stderr)
    if a.md_row:
        if a.md_header:
            print(MD_HEADER)
        print(md_row(res))
    else:
        print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
