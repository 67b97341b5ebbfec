#!/usr/bin/env python3
"""Load generator for any OpenAI-compatible server (Strata `strata serve`, llama.cpp `llama-server`,
vLLM, ...). Standard library only: threads + http.client, streaming SSE.

Workload: N requests at a fixed concurrency C (closed loop) or with Poisson arrivals at rate
lambda (open loop). Prompts are distinct slices of a text corpus (raw-text continuation on
/v1/completions, so the model tends to keep going), temperature 0.

Per request it records the send time, the arrival time of every streamed chunk that carries text
(the first one is the first token), the end time, and the token counts of the final `usage`
(requested with stream_options.include_usage; when the server sends none, completion tokens are
counted as text chunks and prompt tokens are unknown).

Report: TTFT p50/p90/p99, TBT (gaps between consecutive text chunks of a request) p50/p90/p99,
TPOT (per request (e2e - ttft) / (completion_tokens - 1)) p50, end-to-end latency p50/p99,
output tokens/s and requests/s over the run's wall time, and errors (non-200, disconnects,
streams without [DONE]) counted, never raised. JSON on stdout or --json-out; a markdown table
row with --md-row.

Usage:
  python3 bench/serving/loadgen.py --url http://127.0.0.1:8000 -n 16 -c 2 \
      --prompt-tokens 256 --max-tokens 64 [--rate 1.5] [--ignore-eos] [--label strata]
"""
import argparse
import http.client
import json
import math
import os
import random
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def repo_path(p):
    """A path as results record it: relative to the repo root (../shared/... for the fixtures), not this machine's."""
    return os.path.relpath(os.path.abspath(p), ROOT) if p else p
DEFAULT_CORPUS = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "fixtures", "corpus", "moby-dick.txt"))


# ----------------------------------------------------------------------------- metric math
def percentile(values, p):
    """Linear interpolation between closest ranks (numpy's default 'linear'); None if empty."""
    if not values:
        return None
    xs = sorted(values)
    if len(xs) == 1:
        return float(xs[0])
    k = (len(xs) - 1) * (p / 100.0)
    lo = math.floor(k)
    hi = min(lo + 1, len(xs) - 1)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (k - lo))


class RequestRecord:
    """One request's timeline (perf_counter seconds) and outcome."""

    def __init__(self, idx, group=""):
        self.idx = idx
        self.group = group
        self.send = None
        self.chunks = []  # arrival time of every chunk that carried generated text
        self.end = None
        self.prompt_tokens = None  # from usage; None when the server sent none
        self.completion_tokens = None
        self.finish_reason = None
        self.error = None
        self.status = None
        self.text_len = 0

    @property
    def ok(self):
        return self.error is None

    def ttft(self):
        return self.chunks[0] - self.send if self.chunks else None

    def gaps(self):
        return [b - a for a, b in zip(self.chunks, self.chunks[1:])]

    def e2e(self):
        return self.end - self.send if (self.end is not None and self.send is not None) else None

    def n_out(self):
        """Generated tokens: usage when given, else the text chunks (one token per chunk)."""
        return self.completion_tokens if self.completion_tokens is not None else len(self.chunks)

    def tpot(self):
        n = self.n_out()
        if not self.chunks or n < 2:
            return None
        return (self.end - self.chunks[0]) / (n - 1)

    def to_json(self, t0):
        rel = lambda t: None if t is None else round(t - t0, 6)
        return {"idx": self.idx, "group": self.group, "send": rel(self.send), "end": rel(self.end),
                "chunks": [rel(t) for t in self.chunks], "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens, "finish_reason": self.finish_reason,
                "status": self.status, "error": self.error}


def summarize(records, wall_s=None):
    """Aggregate metrics over records. wall_s: the run's duration (default: first send to last end)."""
    ok = [r for r in records if r.ok]
    errs = [r for r in records if not r.ok]
    ttft = [r.ttft() for r in ok if r.ttft() is not None]
    tbt = [g for r in ok for g in r.gaps()]
    tpot = [r.tpot() for r in ok if r.tpot() is not None]
    e2e = [r.e2e() for r in ok if r.e2e() is not None]
    sends = [r.send for r in records if r.send is not None]
    ends = [r.end for r in records if r.end is not None]
    if wall_s is None:
        wall_s = (max(ends) - min(sends)) if sends and ends else 0.0
    out_tok = sum(r.n_out() for r in ok)
    prompt_known = [r.prompt_tokens for r in ok if r.prompt_tokens is not None]
    ms = lambda v: None if v is None else v * 1000.0
    err_kinds = {}
    for r in errs:
        k = r.error.split(":")[0]
        err_kinds[k] = err_kinds.get(k, 0) + 1
    return {
        "requests": len(records),
        "completed": len(ok),
        "errors": len(errs),
        "error_kinds": err_kinds,
        "wall_s": wall_s,
        "ttft_ms": {"p50": ms(percentile(ttft, 50)), "p90": ms(percentile(ttft, 90)), "p99": ms(percentile(ttft, 99)),
                    "mean": ms(sum(ttft) / len(ttft)) if ttft else None},
        "tbt_ms": {"p50": ms(percentile(tbt, 50)), "p90": ms(percentile(tbt, 90)), "p99": ms(percentile(tbt, 99)),
                   "max": ms(max(tbt)) if tbt else None},
        "tpot_ms": {"p50": ms(percentile(tpot, 50)), "p90": ms(percentile(tpot, 90))},
        "e2e_ms": {"p50": ms(percentile(e2e, 50)), "p99": ms(percentile(e2e, 99))},
        "output_tokens": out_tok,
        "output_tokens_per_s": out_tok / wall_s if wall_s > 0 else None,
        "requests_per_s": len(ok) / wall_s if wall_s > 0 else None,
        "prompt_tokens_mean": sum(prompt_known) / len(prompt_known) if prompt_known else None,
        "completion_tokens_mean": out_tok / len(ok) if ok else None,
        "usage_reported": len(prompt_known) == len(ok) and bool(ok),
        "finish_reasons": {k: sum(1 for r in ok if r.finish_reason == k) for k in sorted({str(r.finish_reason) for r in ok})},
    }


MD_HEADER = ("| label | load | req ok/err | prompt tok | out tok/req | TTFT p50/p90/p99 ms | TBT p50/p90/p99 ms "
             "| TPOT p50 ms | e2e p50/p99 ms | out tok/s | req/s |\n"
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def md_row(label, load, s):
    f = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"
    t, b, e = s["ttft_ms"], s["tbt_ms"], s["e2e_ms"]
    return (f"| {label} | {load} | {s['completed']}/{s['errors']} | {f(s['prompt_tokens_mean'], 0)} | "
            f"{f(s['completion_tokens_mean'], 1)} | {f(t['p50'])}/{f(t['p90'])}/{f(t['p99'])} | "
            f"{f(b['p50'])}/{f(b['p90'])}/{f(b['p99'])} | {f(s['tpot_ms']['p50'])} | {f(e['p50'], 0)}/{f(e['p99'], 0)} | "
            f"{f(s['output_tokens_per_s'])} | {f(s['requests_per_s'], 3)} |")


# ----------------------------------------------------------------------------- prompts
def make_prompts(corpus_path, n, chars, seed=0):
    """n distinct slices of about `chars` characters, starting at a word, whitespace collapsed.
    Distinct offsets, so a prefix cache cannot serve one request from another."""
    text = open(corpus_path, encoding="utf-8", errors="replace").read()
    text = " ".join(text.split())
    rng = random.Random(seed)
    span = max(1, len(text) - chars - 64)
    prompts = []
    for _ in range(n):
        off = rng.randrange(span)
        sp = text.find(" ", off)
        off = off if sp < 0 else sp + 1
        prompts.append(text[off:off + chars].rstrip())
    return prompts


# ----------------------------------------------------------------------------- one request
class Client:
    def __init__(self, url, model=None, api_key=None, endpoint="completions", timeout=600.0,
                 include_usage=True, ignore_eos=False, extra=None):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port or (443 if u.scheme == "https" else 80)
        self.https = u.scheme == "https"
        self.prefix = u.path.rstrip("/")
        if self.prefix.endswith("/v1"):
            self.prefix = self.prefix[:-3]
        self.model = model
        self.api_key = api_key
        self.endpoint = endpoint
        self.timeout = timeout
        self.include_usage = include_usage
        self.ignore_eos = ignore_eos
        self.extra = extra or {}

    def conn(self):
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout)

    def headers(self):
        h = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            h["Authorization"] = "Bearer " + self.api_key
        return h

    def get(self, path):
        c = self.conn()
        try:
            c.request("GET", self.prefix + path, headers=self.headers())
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def discover_model(self):
        if self.model is None:
            st, body = self.get("/v1/models")
            if st == 200:
                data = json.loads(body).get("data") or []
                self.model = data[0]["id"] if data else "default"
            else:
                self.model = "default"
        return self.model

    def body(self, prompt, max_tokens):
        b = {"model": self.model, "max_tokens": max_tokens, "temperature": 0.0, "stream": True}
        if self.endpoint == "chat":
            b["messages"] = [{"role": "user", "content": prompt}]
        else:
            b["prompt"] = prompt
        if self.include_usage:
            b["stream_options"] = {"include_usage": True}
        if self.ignore_eos:
            b["ignore_eos"] = True
        b.update(self.extra)
        return b

    def run(self, rec, prompt, max_tokens):
        """Fills rec; never raises."""
        path = self.prefix + ("/v1/chat/completions" if self.endpoint == "chat" else "/v1/completions")
        payload = json.dumps(self.body(prompt, max_tokens)).encode()
        c = None
        done = False
        try:
            c = self.conn()
            rec.send = time.perf_counter()
            c.request("POST", path, body=payload, headers=self.headers())
            r = c.getresponse()
            rec.status = r.status
            if r.status != 200:
                detail = r.read()[:200].decode("utf-8", "replace")
                rec.error = f"http_{r.status}: {detail}"
                return
            while True:
                line = r.readline()
                if not line:
                    break
                now = time.perf_counter()
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    done = True
                    break
                try:
                    ev = json.loads(data)
                except ValueError:
                    rec.error = "bad_json: " + data[:100].decode("utf-8", "replace")
                    return
                if "error" in ev:
                    rec.error = "stream_error: " + json.dumps(ev["error"])[:200]
                    return
                for ch in ev.get("choices") or []:
                    if self.endpoint == "chat":
                        t = (ch.get("delta") or {}).get("content") or ""
                    else:
                        t = ch.get("text") or ""
                    if t:
                        rec.chunks.append(now)
                        rec.text_len += len(t)
                    if ch.get("finish_reason"):
                        rec.finish_reason = ch["finish_reason"]
                u = ev.get("usage")
                if isinstance(u, dict) and u.get("completion_tokens") is not None:
                    rec.prompt_tokens = u.get("prompt_tokens")
                    rec.completion_tokens = u.get("completion_tokens")
            if not done:
                rec.error = "disconnect: stream ended without [DONE]"
        except Exception as e:  # socket errors, timeouts, resets: counted, not raised
            rec.error = f"{type(e).__name__}: {e}"
        finally:
            rec.end = time.perf_counter()
            if c is not None:
                c.close()


# ----------------------------------------------------------------------------- workloads
def run_closed(client, prompts, max_tokens, concurrency, group=""):
    """Fixed concurrency: `concurrency` workers, each sends its next request when the last ended."""
    recs = [RequestRecord(i, group) for i in range(len(prompts))]
    nxt = [0]
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(prompts):
                return
            client.run(recs[i], prompts[i], max_tokens)

    ths = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    return recs


def run_poisson(client, prompts, max_tokens, rate, seed=0, group="", start_delay=0.0):
    """Open loop: request i is sent at the i-th arrival of a Poisson process of `rate` per second."""
    rng = random.Random(seed + 1)
    recs = [RequestRecord(i, group) for i in range(len(prompts))]
    ths = []
    t = time.perf_counter() + start_delay
    for i, p in enumerate(prompts):
        if i > 0 or start_delay == 0.0:
            t += rng.expovariate(rate)
        delay = t - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        th = threading.Thread(target=client.run, args=(recs[i], p, max_tokens), daemon=True)
        th.start()
        ths.append(th)
    for th in ths:
        th.join()
    return recs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8000", help="server base URL (with or without /v1)")
    ap.add_argument("--model", default=None, help="model name (default: first of /v1/models)")
    ap.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY"))
    ap.add_argument("--endpoint", choices=["completions", "chat"], default="completions")
    ap.add_argument("-n", "--num-requests", type=int, default=16)
    ap.add_argument("-c", "--concurrency", type=int, default=1)
    ap.add_argument("--rate", type=float, default=None, help="Poisson arrivals per second (open loop; overrides -c)")
    ap.add_argument("--corpus", default=DEFAULT_CORPUS)
    ap.add_argument("--prompt-chars", type=int, default=None)
    ap.add_argument("--prompt-tokens", type=int, default=256, help="approximate: chars = tokens * --chars-per-token")
    ap.add_argument("--chars-per-token", type=float, default=4.3, help="English text, SmolLM2/Llama-style BPE")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--ignore-eos", action="store_true", help="send ignore_eos: true (Strata, llama.cpp, vLLM accept it)")
    ap.add_argument("--no-usage", action="store_true", help="do not send stream_options.include_usage")
    ap.add_argument("--warmup", type=int, default=1, help="requests sent (sequentially) before measuring")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--label", default="server")
    ap.add_argument("--json-out", default=None, help="write summary + per-request records here")
    ap.add_argument("--md-row", action="store_true", help="print a markdown table row (and header with --md-header)")
    ap.add_argument("--md-header", action="store_true")
    a = ap.parse_args(argv)

    chars = a.prompt_chars or int(a.prompt_tokens * a.chars_per_token)
    client = Client(a.url, a.model, a.api_key, a.endpoint, a.timeout, not a.no_usage, a.ignore_eos)
    client.discover_model()
    prompts = make_prompts(a.corpus, a.num_requests + a.warmup, chars, a.seed)
    for i in range(a.warmup):
        w = RequestRecord(-1 - i, "warmup")
        client.run(w, prompts[a.num_requests + i], min(a.max_tokens, 8))
        if not w.ok:
            print(f"loadgen: warmup request failed: {w.error}", file=sys.stderr)
    prompts = prompts[:a.num_requests]
    t0 = time.perf_counter()
    if a.rate:
        recs = run_poisson(client, prompts, a.max_tokens, a.rate, a.seed)
        load = f"poisson {a.rate:g}/s"
    else:
        recs = run_closed(client, prompts, a.max_tokens, a.concurrency)
        load = f"c={a.concurrency}"
    s = summarize(recs)
    s.update({"label": a.label, "load": load, "url": a.url, "model": os.path.basename(client.model), "endpoint": a.endpoint,
              "prompt_chars": chars, "max_tokens": a.max_tokens, "ignore_eos": a.ignore_eos})
    for r in recs:
        if not r.ok:
            print(f"loadgen: request {r.idx} failed: {r.error}", file=sys.stderr)
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump({"summary": s, "records": [r.to_json(t0) for r in recs]}, f, indent=1)
    if a.md_row:
        if a.md_header:
            print(MD_HEADER)
        print(md_row(a.label, load, s))
    else:
        print(json.dumps(s, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
