"""`strata serve` black box with the official openai client, on the qwen3_moe fixture (tiny512
tokenizer, Qwen3 chat template): completions and chat, stream and not, stop strings and stop
token ids, n, logprobs, seed reproducibility, greedy output equal to `strata generate`, 64
concurrent streams, a disconnect freeing its KV blocks (seen in /metrics), hostile input each
answered with an OpenAI-style 4xx while the server keeps serving, and SIGTERM draining to exit 0."""
import concurrent.futures
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import openai

BIN = os.environ["STRATA_BINARY"]
MODEL = os.path.join(os.environ["STRATA_FIXTURES_DIR"], "models", "qwen3_moe")
KEY = "test-key-0123456789"
CTX = 8192  # long enough that a disconnected stream is still running when it is closed
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from strata_checks import check, finish, start_serve  # noqa: E402


def strata(*args):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, errors="replace", timeout=120)


def start_server(*extra):
    return start_serve(BIN, ["--model", MODEL, "--ctx", str(CTX), "--api-key", KEY, "--request-timeout", "1",
                             "--max-body-bytes", str(1 << 20), *extra])


proc, PORT, LOG = start_server()
BASE = f"http://127.0.0.1:{PORT}"
client = openai.OpenAI(base_url=BASE + "/v1", api_key=KEY, max_retries=0, timeout=60)
NAME = client.models.list().data[0].id
check(NAME == "qwen3_moe", f"/v1/models: {NAME}")


def raw(method, path, body=None, headers=None, key=True):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    h = dict(headers or {})
    if key:
        h["Authorization"] = "Bearer " + KEY
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def metrics():
    _, data = raw("GET", "/metrics", key=False)
    out = {}
    for line in data.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


# --- greedy completions equal the reference generate path ------------------------------------
prompt_ids = strata("tokenize", "--tokenizer", MODEL, "--text", "Call me Ishmael. Some years ago")
ids = json.loads(prompt_ids.stdout)
gen = strata("generate", "--model", MODEL, "--input-ids", ",".join(map(str, ids)), "--max-tokens", "12", "--ignore-eos")
gen_ids = json.loads(gen.stdout)
ref_text = strata("detokenize", "--tokenizer", MODEL, "--ids", json.dumps(gen_ids), "--skip-special").stdout
r = client.completions.create(model=NAME, prompt=ids, max_tokens=12, temperature=0, extra_body={"ignore_eos": True})
check(r.choices[0].text == ref_text, f"greedy completion {r.choices[0].text!r} != generate {ref_text!r}")
check(r.choices[0].finish_reason == "length", f"finish_reason {r.choices[0].finish_reason}")
check(r.usage.prompt_tokens == len(ids) and r.usage.completion_tokens == 12, f"usage {r.usage}")

# Text prompt, streamed vs not (greedy: identical), with usage in the stream.
r = client.completions.create(model=NAME, prompt="Call me Ishmael.", max_tokens=16, temperature=0,
                              extra_body={"ignore_eos": True})
full = r.choices[0].text
chunks = list(client.completions.create(model=NAME, prompt="Call me Ishmael.", max_tokens=16, temperature=0,
                                        stream=True, stream_options={"include_usage": True},
                                        extra_body={"ignore_eos": True}))
streamed = "".join(c.choices[0].text for c in chunks if c.choices)
check(streamed == full, f"stream {streamed!r} != non-stream {full!r}")
check([c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"],
      "stream finish_reason")
check(chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 16, f"stream usage {chunks[-1].usage}")

# --- chat, stream and not ---------------------------------------------------------------------
msgs = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Who is Ahab?"}]
c1 = client.chat.completions.create(model=NAME, messages=msgs, max_tokens=12, temperature=0,
                                    extra_body={"ignore_eos": True})
check(c1.choices[0].message.role == "assistant", "chat role")
content = (c1.choices[0].message.content or "")
reasoning = getattr(c1.choices[0].message, "reasoning_content", None) or ""
tmpl = strata("chat-template", "--template", MODEL, "--messages", json.dumps(msgs), "--generation-prompt").stdout
chat_ids = json.loads(strata("tokenize", "--tokenizer", MODEL, "--text", tmpl).stdout)
check(c1.usage.prompt_tokens == len(chat_ids), f"chat prompt tokens {c1.usage.prompt_tokens} != {len(chat_ids)}")
s = list(client.chat.completions.create(model=NAME, messages=msgs, max_tokens=12, temperature=0, stream=True,
                                        extra_body={"ignore_eos": True}))
s_content = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
s_reason = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in s if c.choices)
check((s_content, s_reason) == (content, reasoning), f"chat stream {(s_content, s_reason)!r} != {(content, reasoning)!r}")
check(s[0].choices[0].delta.role == "assistant", "first chunk carries the role")

# --- stop strings (server side, on text) and stop token ids ------------------------------------
r = client.completions.create(model=NAME, prompt=ids, max_tokens=24, temperature=0, extra_body={"ignore_eos": True})
text = r.choices[0].text
stop = text[len(text) // 2: len(text) // 2 + 3] if len(text) >= 8 else None
if stop and stop.strip():
    cut = text[:text.index(stop)]
    for stream in (False, True):
        kw = dict(model=NAME, prompt=ids, max_tokens=24, temperature=0, stop=[stop, "\u2603never"],
                  extra_body={"ignore_eos": True})
        if stream:
            cs = list(client.completions.create(stream=True, **kw))
            got = "".join(c.choices[0].text for c in cs if c.choices)
            fin = [c.choices[0].finish_reason for c in cs if c.choices and c.choices[0].finish_reason]
        else:
            rr = client.completions.create(**kw)
            got, fin = rr.choices[0].text, [rr.choices[0].finish_reason]
        check(got == cut and fin == ["stop"], f"stop {stop!r} stream={stream}: {got!r} {fin} (want {cut!r})")
else:
    check(False, f"greedy text too short to pick a stop string: {text!r}")
# A stop token id: the first greedy id that is not also earlier in the output.
k = next(i for i in range(2, len(gen_ids)) if gen_ids[i] not in gen_ids[:i]) if len(set(gen_ids)) > 2 else None
if k is not None:
    r = client.completions.create(model=NAME, prompt=ids, max_tokens=12, temperature=0,
                                  extra_body={"ignore_eos": True, "stop_token_ids": [gen_ids[k]]})
    want = strata("detokenize", "--tokenizer", MODEL, "--ids", json.dumps(gen_ids[:k]), "--skip-special").stdout
    check(r.choices[0].finish_reason == "stop" and r.choices[0].text == want and r.usage.completion_tokens == k + 1,
          f"stop_token_ids: {r.choices[0].finish_reason} {r.choices[0].text!r} {r.usage.completion_tokens} (want {want!r}, {k + 1})")

# --- n, seed, logprobs --------------------------------------------------------------------------
HOT = dict(temperature=30, top_p=1, extra_body={"top_k": 0, "ignore_eos": True})
a = client.completions.create(model=NAME, prompt="Whale", max_tokens=10, n=3, seed=11, **HOT)
b = client.completions.create(model=NAME, prompt="Whale", max_tokens=10, n=3, seed=11, **HOT)
c = client.completions.create(model=NAME, prompt="Whale", max_tokens=10, n=3, seed=12, **HOT)
ta, tb, tc = ([x.text for x in sorted(y.choices, key=lambda x: x.index)] for y in (a, b, c))
check(sorted(x.index for x in a.choices) == [0, 1, 2], "n=3 indexes")
check(ta == tb, f"same seed, different choices: {ta} {tb}")
check(ta != tc, "another seed gave the same choices: the seed is not used")
check(len(set(ta)) > 1, f"n=3 choices at temperature 30 are all equal: {ta}")
check(a.usage.completion_tokens == 30, f"n=3 usage {a.usage}")
ca = client.chat.completions.create(model=NAME, messages=msgs, max_tokens=8, seed=5, **HOT)
cb = client.chat.completions.create(model=NAME, messages=msgs, max_tokens=8, seed=5, **HOT)
check(ca.choices[0].message.content == cb.choices[0].message.content, "chat seed reproducibility")

r = client.completions.create(model=NAME, prompt=ids, max_tokens=6, temperature=0, logprobs=3,
                              extra_body={"ignore_eos": True})
lp = r.choices[0].logprobs
check(len(lp.tokens) == 6 and len(lp.token_logprobs) == 6 and len(lp.top_logprobs) == 6, f"logprobs shape {lp}")
check(all(x <= 0 for x in lp.token_logprobs), "logprobs must be <= 0")
check(all(1 <= len(t) <= 3 and abs(max(t.values()) - v) < 1e-4 for t, v in zip(lp.top_logprobs, lp.token_logprobs)),
      "greedy: the chosen token is the best of top_logprobs")
r = client.chat.completions.create(model=NAME, messages=msgs, max_tokens=5, temperature=0, logprobs=True,
                                   top_logprobs=2, extra_body={"ignore_eos": True})
cl = r.choices[0].logprobs.content
check(len(cl) == 5 and all(len(e.top_logprobs) == 2 and e.logprob <= 0 for e in cl), f"chat logprobs {cl}")

# --- per-request engine stats (a Strata extension): expert bytes on a MoE model ----------------
r = client.completions.create(model=NAME, prompt=ids, max_tokens=5, n=2, temperature=0,
                              extra_body={"ignore_eos": True, "return_stats": True})
st = (r.model_extra or {}).get("stats", [])
check(sorted(x["index"] for x in st) == [0, 1] and all(x["expert_bytes"] > 0 and x["completion_tokens"] == 5 and
                                                         0 <= x["queue_s"] <= x["ttft_s"] <= x["e2e_s"] for x in st),
      f"return_stats: {st}")
cs = list(client.completions.create(model=NAME, prompt=ids, max_tokens=3, temperature=0, stream=True,
                                    stream_options={"include_usage": True},
                                    extra_body={"ignore_eos": True, "return_stats": True}))
st = (cs[-1].model_extra or {}).get("stats", [])
check(len(st) == 1 and st[0]["expert_bytes"] > 0, f"streamed return_stats: {st}")

# --- 64 concurrent streams all complete ----------------------------------------------------------
def one_stream(i):
    cl = openai.OpenAI(base_url=BASE + "/v1", api_key=KEY, max_retries=0, timeout=120)
    got, fin = "", None
    for ch in cl.completions.create(model=NAME, prompt=f"Stream {i}:", max_tokens=16, temperature=0, stream=True,
                                    extra_body={"ignore_eos": True}):
        if ch.choices:
            got += ch.choices[0].text
            fin = ch.choices[0].finish_reason or fin
    return fin


t = time.time()
with concurrent.futures.ThreadPoolExecutor(64) as ex:
    fins = list(ex.map(one_stream, range(64)))
check(fins == ["length"] * 64, f"64 streams: {fins}")
print(f"64 concurrent streams of 16 tokens: {time.time() - t:.2f}s", flush=True)

# --- a disconnect aborts the sequence and frees its blocks -------------------------------------
ABORTS = 'strata_request_finished_total{finished_reason="abort"}'
m0 = metrics()
sock = socket.create_connection(("127.0.0.1", PORT))
body = json.dumps({"model": NAME, "prompt": ids * 4, "max_tokens": CTX - 4 * len(ids) - 1, "stream": True,
                   "ignore_eos": True})
sock.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
buf = b""
while buf.count(b"data: {") < 3:
    d = sock.recv(65536)
    if not d:
        break
    buf += d
m1 = metrics()
sock.close()
t = time.time()
while time.time() - t < 5:
    m2 = metrics()
    # The engine frees the blocks first; the server counts the abort when its final event arrives.
    if (m2["strata_num_requests_running"] == 0 and m2["strata_kv_cache_blocks_used"] <= m0["strata_kv_cache_blocks_used"]
            and m2[ABORTS] > m0[ABORTS]):
        break
    time.sleep(0.02)
print(f"disconnect: blocks used {m0['strata_kv_cache_blocks_used']:.0f} -> {m1['strata_kv_cache_blocks_used']:.0f} "
      f"while streaming -> {m2['strata_kv_cache_blocks_used']:.0f} {time.time() - t:.3f}s after close", flush=True)
check(m1["strata_kv_cache_blocks_used"] > m0["strata_kv_cache_blocks_used"], "a streaming request holds no blocks?")
check(m2["strata_num_requests_running"] == 0, "the disconnected request still runs")
check(m2["strata_kv_cache_blocks_used"] <= m0["strata_kv_cache_blocks_used"], "the disconnected request kept its blocks")
check(m2[ABORTS] == m0[ABORTS] + 1, "no abort counted")
gen_total = m2["strata_generation_tokens_total"] - m1["strata_generation_tokens_total"]
check(gen_total < 200, f"{gen_total} tokens generated after the disconnect")

# --- hostile input: each an OpenAI-style 4xx, and the next request still works ------------------
def is_openai_error(data):
    try:
        e = json.loads(data)["error"]
        return all(k in e for k in ("message", "type", "param", "code"))
    except Exception:
        return False


def still_serves(what):
    r = client.completions.create(model=NAME, prompt="ok", max_tokens=2)
    check(len(r.choices) == 1, f"after {what}: the server stopped serving")


good = {"model": NAME, "prompt": "hi", "max_tokens": 2}
hostile = [
    ("malformed JSON", "POST", "/v1/completions", '{"model": "x", "prompt": ', {}, True, 400),
    ("JSON array body", "POST", "/v1/chat/completions", "[1,2,3]", {}, True, 400),
    ("wrong type prompt", "POST", "/v1/completions", {**good, "prompt": {"a": 1}}, {}, True, 400),
    ("wrong type max_tokens", "POST", "/v1/completions", {**good, "max_tokens": "12"}, {}, True, 400),
    ("wrong type messages", "POST", "/v1/chat/completions", {"model": NAME, "messages": "hi"}, {}, True, 400),
    ("negative max_tokens", "POST", "/v1/completions", {**good, "max_tokens": -1}, {}, True, 400),
    ("huge max_tokens", "POST", "/v1/completions", {**good, "max_tokens": 10**12}, {}, True, 400),
    ("huge max_tokens 2^70", "POST", "/v1/completions", {**good, "max_tokens": 2**70}, {}, True, 400),
    ("prompt beyond context", "POST", "/v1/completions", {**good, "prompt": [5] * (CTX + 10)}, {}, True, 400),
    ("token id beyond vocab", "POST", "/v1/completions", {**good, "prompt": [5, 100000]}, {}, True, 400),
    ("invalid UTF-8", "POST", "/v1/completions", b'{"model":"qwen3_moe","prompt":"\xff\xfe\xc3"}', {}, True, 400),
    ("unknown model", "POST", "/v1/completions", {**good, "model": "gpt-5"}, {}, True, 404),
    ("missing API key", "POST", "/v1/completions", good, {}, False, 401),
    ("wrong API key", "POST", "/v1/completions", good, {"Authorization": "Bearer nope"}, False, 401),
    ("unknown route", "GET", "/v1/engines", None, {}, True, 404),
    ("wrong method", "GET", "/v1/completions", None, {}, True, 405),
    ("n too large", "POST", "/v1/completions", {**good, "n": 100000}, {}, True, 400),
    ("temperature NaN-ish", "POST", "/v1/completions", '{"prompt":"a","temperature":1e999}', {}, True, 400),
]
for what, method, path, body, headers, key, want in hostile:
    st, data = raw(method, path, body, headers, key)
    check(st == want and is_openai_error(data), f"{what}: {st} {data[:200]!r}")
    still_serves(what)
st, data = raw("POST", "/v1/completions", {**good, "prompt": [5] * (CTX + 10)})
check(json.loads(data)["error"]["code"] == "context_length_exceeded", f"prompt beyond context: {data[:200]!r}")
try:
    client.completions.create(model=NAME, prompt="hi", max_tokens=-3)
    check(False, "negative max_tokens accepted by the openai client path")
except openai.BadRequestError as e:
    check(e.status_code == 400, "openai client sees 400")


def raw_socket(payload, wait_close=True, timeout=10):
    s = socket.create_connection(("127.0.0.1", PORT))
    s.settimeout(timeout)
    try:
        s.sendall(payload)
    except OSError:
        pass  # the server may answer and close before reading everything (413)
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
            if not wait_close and b"\r\n\r\n" in data:
                break
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return data


def status(data):
    m = re.match(rb"HTTP/1\.1 (\d+)", data)
    return int(m.group(1)) if m else 0


# A 10 MB body is refused from its Content-Length (413) without being buffered.
big = b"x" * (10 << 20)
data = raw_socket(b"POST /v1/completions HTTP/1.1\r\nAuthorization: Bearer " + KEY.encode() +
                  b"\r\nContent-Length: " + str(len(big)).encode() + b"\r\n\r\n" + big)
check(status(data) == 413 and is_openai_error(data.split(b"\r\n\r\n", 1)[1]), f"10 MB body: {data[:200]!r}")
still_serves("10 MB body")
for what, payload in [("garbage request line", b"\x00\x01garbage\r\n\r\n"), ("TLS hello", b"\x16\x03\x01\x02\x00\x01\x00"
                                                                                         b"\x01\xfc\x03\x03\r\n\r\n"),
                      ("bad HTTP version", b"GET /health HTTP/9.9\r\n\r\n"),
                      ("chunked body", b"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")]:
    data = raw_socket(payload)
    check(400 <= status(data) < 600 and status(data) != 500, f"{what}: {data[:200]!r}")
    still_serves(what)
# A slow client that never finishes its request: 408 after --request-timeout (1 s), not a hang.
t = time.time()
data = raw_socket(b"POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"pro", timeout=10)
check(status(data) == 408 and time.time() - t < 5, f"slow client: {data[:120]!r} after {time.time() - t:.1f}s")
# Pipelined: two requests in one write, two responses in order.
req = (f"POST /v1/completions HTTP/1.1\r\nAuthorization: Bearer {KEY}\r\nContent-Length: {len(json.dumps(good))}"
       f"\r\n\r\n{json.dumps(good)}GET /health HTTP/1.1\r\nConnection: close\r\n\r\n").encode()
data = raw_socket(req)
check(data.count(b"HTTP/1.1 200 OK") == 2 and data.index(b"text_completion") < data.rindex(b"HTTP/1.1 200"),
      f"pipelined: {data[:300]!r}")
still_serves("pipelined")
check(proc.poll() is None, "the server died")

# --- /metrics -----------------------------------------------------------------------------------
m = metrics()
for name in ("strata_time_to_first_token_seconds_count", "strata_inter_token_latency_seconds_count",
             "strata_e2e_request_latency_seconds_count", "strata_request_queue_time_seconds_count",
             "strata_num_requests_running", "strata_num_requests_waiting", "strata_kv_cache_usage_ratio",
             "strata_prefix_cache_hit_ratio", "strata_expert_bytes_total"):
    check(name in m, f"/metrics lacks {name}")
check(m.get("strata_time_to_first_token_seconds_count", 0) >= 64, "TTFT histogram did not count the streams")
check(m.get("strata_expert_bytes_total", 0) > 0, "no expert bytes counted on a MoE model")
check(KEY not in open(LOG, errors="replace").read(), "the API key appears in the server log")

# --- SIGTERM drains an in-flight stream and exits 0 ---------------------------------------------
got = []


def drain_stream():
    cl = openai.OpenAI(base_url=BASE + "/v1", api_key=KEY, max_retries=0, timeout=60)
    for ch in cl.completions.create(model=NAME, prompt="Drain", max_tokens=200, temperature=0, stream=True,
                                    stream_options={"include_usage": True}, extra_body={"ignore_eos": True}):
        got.append(ch.choices[0].finish_reason if ch.choices else ch.usage.completion_tokens)


th = threading.Thread(target=drain_stream)
th.start()
while not got:
    time.sleep(0.01)
proc.send_signal(signal.SIGTERM)
th.join(60)
try:
    code = proc.wait(timeout=30)
except subprocess.TimeoutExpired:
    proc.kill()
    code = "hung"
check(got[-2:] == ["length", 200], f"the in-flight stream did not finish under SIGTERM: {got[-2:]}")
check(code == 0, f"exit code after SIGTERM: {code}")

# --- admission: a full queue is 429 before any compute ------------------------------------------
proc, PORT, LOG = start_server("--max-waiting", "0")
st, data = raw("POST", "/v1/completions", {"model": "qwen3_moe", "prompt": "hi", "max_tokens": 2})
check(st == 429 and is_openai_error(data) and json.loads(data)["error"]["code"] == "queue_full",
      f"queue full: {st} {data[:200]!r}")
check(raw("GET", "/health", key=False)[0] == 200, "health after a 429")
proc.send_signal(signal.SIGTERM)
check(proc.wait(timeout=30) == 0, "second server exit code")

# --- every scheduler policy serves the same greedy text (the flags reach the engine) -------------
for policy in ("none", "layered", "chunked+layered"):
    proc, PORT, LOG = start_server("--scheduler", policy, "--max-step-tokens", "8", "--layer-groups", "2")
    cl = openai.OpenAI(base_url=f"http://127.0.0.1:{PORT}/v1", api_key=KEY, max_retries=0, timeout=60)
    r = cl.completions.create(model=NAME, prompt=ids, max_tokens=12, temperature=0, extra_body={"ignore_eos": True})
    check(r.choices[0].text == ref_text, f"--scheduler {policy}: {r.choices[0].text!r} != {ref_text!r}")
    proc.send_signal(signal.SIGTERM)
    check(proc.wait(timeout=30) == 0, f"--scheduler {policy}: exit code")

# --- reasoning_content: a template whose generation prompt opens <think> (as Kimi-K2-Thinking's
# does) puts the answer in reasoning until </think>; the same ids as plain text must match. ------
tdir = tempfile.mkdtemp(prefix="strata-think-")
cfg = json.load(open(os.path.join(MODEL, "tokenizer_config.json")))
cfg["chat_template"] = cfg["chat_template"].replace("{{- '<|im_start|>assistant\\n' }}",
                                                    "{{- '<|im_start|>assistant\\n<think>\\n' }}")
check("<think>\\n' }}" in cfg["chat_template"], "could not patch the template")
json.dump(cfg, open(os.path.join(tdir, "tokenizer_config.json"), "w"))
with open(os.path.join(MODEL, "tokenizer.json"), "rb") as src, open(os.path.join(tdir, "tokenizer.json"), "wb") as dst:
    dst.write(src.read())
proc, PORT, LOG = start_server("--chat-template", tdir)
client = openai.OpenAI(base_url=f"http://127.0.0.1:{PORT}/v1", api_key=KEY, max_retries=0, timeout=60)
r = client.chat.completions.create(model=NAME, messages=msgs, max_tokens=24, temperature=0,
                                   extra_body={"ignore_eos": True})
reasoning = getattr(r.choices[0].message, "reasoning_content", None) or ""
content = r.choices[0].message.content or ""
tmpl = strata("chat-template", "--template", tdir, "--messages", json.dumps(msgs), "--generation-prompt").stdout
think_ids = json.loads(strata("tokenize", "--tokenizer", tdir, "--text", tmpl).stdout)
plain = client.completions.create(model=NAME, prompt=think_ids, max_tokens=24, temperature=0,
                                  extra_body={"ignore_eos": True}).choices[0].text
check(reasoning != "" and plain.startswith(reasoning) and plain.endswith(content),
      f"reasoning split: reasoning {reasoning!r} content {content!r} vs text {plain!r}")
s = list(client.chat.completions.create(model=NAME, messages=msgs, max_tokens=24, temperature=0, stream=True,
                                        extra_body={"ignore_eos": True}))
s_reason = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or "" for c in s if c.choices)
s_content = "".join(c.choices[0].delta.content or "" for c in s if c.choices)
check((s_reason, s_content) == (reasoning, content), f"streamed reasoning {(s_reason, s_content)!r}")
proc.send_signal(signal.SIGTERM)
check(proc.wait(timeout=30) == 0, "third server exit code")

shutil.rmtree(tdir, ignore_errors=True)
finish("test_serve")
