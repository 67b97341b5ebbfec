"""bench/serving/loadgen.py: the metric math on synthetic timestamps (percentiles, TTFT, TBT, TPOT,
throughput, error counting), and its SSE client against an in-process stub server (stdlib
http.server on an ephemeral port: a normal stream with usage, one without usage, a 500, and a
stream cut before [DONE]). No Strata binary, no model; well under a second."""
import http.server
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "serving"))
import loadgen as lg  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from strata_checks import check, finish  # noqa: E402


def close(a, b, tol=1e-9):
    return a is not None and b is not None and abs(a - b) <= tol * max(1.0, abs(b))


# --- percentiles: numpy 'linear' semantics
check(lg.percentile([], 50) is None, "empty percentile")
check(lg.percentile([7], 99) == 7.0, "single-value percentile")
xs = list(range(1, 101))  # 1..100
check(close(lg.percentile(xs, 50), 50.5), f"p50 {lg.percentile(xs, 50)}")
check(close(lg.percentile(xs, 90), 90.1), f"p90 {lg.percentile(xs, 90)}")
check(close(lg.percentile(xs, 99), 99.01), f"p99 {lg.percentile(xs, 99)}")
check(close(lg.percentile([3, 1, 2], 0), 1.0) and close(lg.percentile([3, 1, 2], 100), 3.0), "p0/p100 unsorted")


# --- records on synthetic timestamps
def rec(idx, send, chunks, end, completion=None, prompt=None, error=None):
    r = lg.RequestRecord(idx)
    r.send, r.chunks, r.end = send, list(chunks), end
    r.completion_tokens, r.prompt_tokens, r.error = completion, prompt, error
    r.finish_reason = None if error else "length"
    return r


a = rec(0, 10.0, [10.5, 10.6, 10.8, 11.0], 11.1, completion=4, prompt=100)  # ttft .5, gaps .1 .2 .2
b = rec(1, 10.2, [11.2, 11.3], 11.4, completion=2, prompt=120)               # ttft 1.0, gap .1
c = rec(2, 10.4, [], 10.9, error="http_503: busy")                              # failed
d = rec(3, 10.3, [10.7, 10.9, 11.1], 12.0)                                      # no usage: 3 chunks
check(close(a.ttft(), 0.5) and close(b.ttft(), 1.0), "ttft")
check([round(g, 9) for g in a.gaps()] == [0.1, 0.2, 0.2], f"gaps {a.gaps()}")
check(close(a.tpot(), (11.1 - 10.5) / 3), f"tpot {a.tpot()}")
check(d.n_out() == 3 and c.tpot() is None, "n_out from chunks without usage")
s = lg.summarize([a, b, c, d])
check(s["requests"] == 4 and s["completed"] == 3 and s["errors"] == 1, f"counts {s}")
check(s["error_kinds"] == {"http_503": 1}, f"error kinds {s['error_kinds']}")
check(close(s["wall_s"], 12.0 - 10.0), f"wall {s['wall_s']}")  # first send to last end, failed ones included
check(s["output_tokens"] == 4 + 2 + 3, f"output tokens {s['output_tokens']}")
check(close(s["output_tokens_per_s"], 9 / 2.0), f"tok/s {s['output_tokens_per_s']}")
check(close(s["requests_per_s"], 3 / 2.0), f"req/s {s['requests_per_s']}")
ttfts = [0.5, 1.0, 0.4]
check(close(s["ttft_ms"]["p50"], 500.0), f"ttft p50 {s['ttft_ms']}")
check(close(s["ttft_ms"]["p90"], 1000 * lg.percentile(ttfts, 90)), f"ttft p90 {s['ttft_ms']}")
tbt = [0.1, 0.2, 0.2, 0.1, 0.2, 0.2]  # a's, b's and d's gaps pooled
check(close(s["tbt_ms"]["p50"], 1000 * lg.percentile(tbt, 50), 1e-6), f"tbt p50 {s['tbt_ms']}")
check(close(s["tbt_ms"]["max"], 200.0, 1e-6), f"tbt max {s['tbt_ms']}")
check(close(s["e2e_ms"]["p50"], 1000 * lg.percentile([1.1, 1.2, 1.7], 50), 1e-6), f"e2e {s['e2e_ms']}")
check(not s["usage_reported"] and s["prompt_tokens_mean"] == 110, f"usage {s['usage_reported']} {s['prompt_tokens_mean']}")
row = lg.md_row("x", "c=1", s)
check(row.startswith("| x | c=1 | 3/1 |") and row.count("|") == lg.MD_HEADER.splitlines()[0].count("|"), row)
check(lg.summarize([])["completed"] == 0, "empty summary")


# --- SSE client against a stub server
def sse(obj):
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


class Stub(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        body = json.dumps({"data": [{"id": "stub-model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        req = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode = req["prompt"]
        if mode == "500":
            body = b'{"error": {"message": "boom"}}'
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        check(req["temperature"] == 0 and req["stream"] is True and req["model"] == "stub-model", f"body {req}")
        for i in range(3):
            self.wfile.write(sse({"choices": [{"index": 0, "text": f"t{i}", "finish_reason": None}]}))
            self.wfile.flush()
            time.sleep(0.01)
            if mode == "cut" and i == 1:
                return  # connection closes without [DONE]
        self.wfile.write(sse({"choices": [{"index": 0, "text": "", "finish_reason": "length"}]}))
        if mode == "usage" and req.get("stream_options", {}).get("include_usage"):
            self.wfile.write(sse({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 4}}))
        self.wfile.write(b"data: [DONE]\n\n")


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
client = lg.Client(f"http://127.0.0.1:{srv.server_address[1]}/v1", timeout=5)
check(client.discover_model() == "stub-model", f"model {client.model}")
recs = lg.run_closed(client, ["usage", "plain", "500", "cut"], 8, concurrency=2)
u, p, e5, cut = recs
check(u.ok and u.completion_tokens == 4 and u.prompt_tokens == 5 and len(u.chunks) == 3, f"usage rec {vars(u)}")
check(u.finish_reason == "length" and u.ttft() > 0 and len(u.gaps()) == 2 and min(u.gaps()) > 0.005, f"timing {vars(u)}")
check(p.ok and p.completion_tokens is None and p.n_out() == 3, f"plain rec {vars(p)}")
check(not e5.ok and e5.status == 500 and e5.error.startswith("http_500"), f"500 rec {vars(e5)}")
check(not cut.ok and cut.error.startswith("disconnect"), f"cut rec {vars(cut)}")
s = lg.summarize(recs)
check(s["completed"] == 2 and s["errors"] == 2 and s["output_tokens"] == 7, f"stub summary {s}")
# open loop: arrivals spread out, every request answered
recs = lg.run_poisson(client, ["plain"] * 3, 8, rate=200.0)
check(all(r.ok for r in recs) and recs[0].send <= recs[1].send <= recs[2].send, "poisson")
# a refused connection is an error, not an exception
dead = lg.Client("http://127.0.0.1:1", model="m", timeout=1)
r = lg.RequestRecord(0)
dead.run(r, "x", 4)
check(not r.ok and r.end is not None, f"refused {r.error}")
srv.shutdown()

finish("test_loadgen")
