"""`strata serve` with OpenAI tools, end to end on the qwen3_moe fixture (Qwen3 chat template, Hermes
tool calls), with the official openai client. The tiny random model never emits a tool call, so
what is checked end to end is the prompt: a chat with `tools`, an assistant turn with `tool_calls`
(arguments as JSON strings, content null) and `tool` results must become exactly the prompt that
jinja2 renders from the model's own chat template the way vLLM passes it (arguments decoded to
objects, key order kept) -- seen as equal prompt token counts and equal greedy continuations of
chat vs /v1/completions on the jinja2 prompt. tool_choice "none" renders the same prompt; streaming
with tools works; malformed tools and unsupported tool_choice values are OpenAI-style 400s and the
server keeps serving. (The parser itself: tests/server/test_tool_calls.py.)"""
import http.client
import json
import os
import subprocess
import sys

import jinja2
import jinja2.ext
import openai
from jinja2.sandbox import ImmutableSandboxedEnvironment

BIN = os.environ["STRATA_BINARY"]
MODEL = os.path.join(os.environ["STRATA_FIXTURES_DIR"], "models", "qwen3_moe")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from strata_checks import check, finish, start_serve  # noqa: E402

proc, PORT, _ = start_serve(BIN, ["--model", MODEL, "--ctx", "2048"], log_prefix="strata-serve-tools-")
client = openai.OpenAI(base_url=f"http://127.0.0.1:{PORT}/v1", api_key="none", max_retries=0, timeout=60)
NAME = client.models.list().data[0].id

# The oracle: jinja2 configured as transformers' apply_chat_template, the model's chat template.
cfg = json.load(open(os.path.join(MODEL, "tokenizer_config.json"), encoding="utf-8"))
ENV = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
ENV.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: json.dumps(
    x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
TEMPLATE = ENV.from_string(cfg["chat_template"])
SPECIAL = {k: cfg[k] for k in ("bos_token", "eos_token", "pad_token") if isinstance(cfg.get(k), str)}


def jinja2_prompt_ids(messages, tools):
    msgs = json.loads(json.dumps(messages))
    for msg in msgs:  # what vLLM hands the template: arguments as objects, null content as ""
        if msg.get("content") is None:
            msg["content"] = ""
        for tc in msg.get("tool_calls") or []:
            tc["function"]["arguments"] = json.loads(tc["function"]["arguments"] or "{}")
    text = TEMPLATE.render(messages=msgs, tools=tools, documents=None, add_generation_prompt=True, **SPECIAL)
    r = subprocess.run([BIN, "tokenize", "--tokenizer", MODEL, "--text", text], capture_output=True, text=True)
    return json.loads(r.stdout)


# Key order deliberately not sorted: the template prints the schema with tojson.
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city («Zürich», 東京)",
    "parameters": {"type": "object", "properties": {"unit": {"enum": ["c", "f"], "type": "string"},
                                                    "city": {"type": "string", "description": "name"}},
                   "required": ["city"]}}},
    {"type": "function", "function": {"name": "search", "parameters": {"type": "object", "properties": {
        "query": {"type": "string"}, "filter": {"type": "object"}}}}}]
MSGS = [{"role": "system", "content": "Use tools."},
        {"role": "user", "content": "Weather in Zürich? Also search for news."},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": json.dumps({"city": "Zürich", "unit": "c"})}},
            {"id": "call_2", "type": "function",
             "function": {"name": "search", "arguments": json.dumps({"query": "news", "filter": {"z": 1, "a": [1]}},
                                                                   ensure_ascii=False)}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 3}"},
        {"role": "tool", "tool_call_id": "call_2", "content": "nothing new"},
        {"role": "user", "content": "Thanks. And Oslo?"}]

want_ids = jinja2_prompt_ids(MSGS, TOOLS)
greedy = dict(model=NAME, max_tokens=6, temperature=0, extra_body={"ignore_eos": True})
r = client.chat.completions.create(messages=MSGS, tools=TOOLS, logprobs=True, **greedy)
msg = r.choices[0].message
check(r.usage.prompt_tokens == len(want_ids), f"tools prompt: {r.usage.prompt_tokens} tokens != jinja2's {len(want_ids)}")
check(r.choices[0].finish_reason in ("length", "tool_calls"), f"finish_reason {r.choices[0].finish_reason}")
# The same greedy tokens as a plain completion of jinja2's prompt: the prompts are the same.
ref = client.completions.create(prompt=want_ids, logprobs=0, **greedy)
chat_tokens = [t.token for t in r.choices[0].logprobs.content]
check(chat_tokens == ref.choices[0].logprobs.tokens,
      f"chat tokens {chat_tokens} != completion on jinja2's prompt {ref.choices[0].logprobs.tokens}")
r_plain = client.chat.completions.create(messages=MSGS[:2], **greedy)
check(r_plain.usage.prompt_tokens < r.usage.prompt_tokens, "tools did not grow the prompt")
check(r_plain.usage.prompt_tokens == len(jinja2_prompt_ids(MSGS[:2], None)), "prompt without tools")

# tool_choice "none": tools still rendered (as vLLM does), nothing parsed.
r_none = client.chat.completions.create(messages=MSGS, tools=TOOLS, tool_choice="none", **greedy)
check(r_none.usage.prompt_tokens == len(want_ids), f"tool_choice none prompt {r_none.usage.prompt_tokens}")
check(not r_none.choices[0].message.tool_calls, "tool_choice none parsed a call")
r_auto = client.chat.completions.create(messages=MSGS, tools=TOOLS, tool_choice="auto", parallel_tool_calls=True,
                                        **greedy)
check(r_auto.usage.prompt_tokens == len(want_ids), "tool_choice auto prompt")

# Streaming with tools: content (and any tool-call deltas) arrive, one finish_reason.
chunks = list(client.chat.completions.create(messages=MSGS, tools=TOOLS, stream=True, **greedy))
finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
check(len(finishes) == 1 and finishes[0] in ("length", "tool_calls"), f"stream finish {finishes}")
s_content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
check(s_content == (msg.content or ""), f"stream content {s_content!r} != {msg.content!r}")


# --- 400s for malformed tools and unsupported tool_choice; the server keeps serving -------------
def raw(body):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    c.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    resp = c.getresponse()
    data = resp.read()
    c.close()
    return resp.status, data


base = {"model": NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
fn = TOOLS[0]["function"]
bad = [
    ("tools not an array", {"tools": {"type": "function", "function": fn}}, "tools"),
    ("tool not an object", {"tools": ["get_weather"]}, "tools[0]"),
    ("tool type not function", {"tools": [{"type": "retrieval", "function": fn}]}, "tools[0].type"),
    ("tool without function", {"tools": [{"type": "function"}]}, "tools[0].function"),
    ("function without name", {"tools": [{"type": "function", "function": {"parameters": {}}}]},
     "tools[0].function.name"),
    ("function name not a string", {"tools": [{"type": "function", "function": {"name": 3}}]},
     "tools[0].function.name"),
    ("parameters not an object", {"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]},
     "tools[0].function.parameters"),
    ("tool_choice required", {"tools": TOOLS, "tool_choice": "required"}, "tool_choice"),
    ("tool_choice named", {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "search"}}},
     "tool_choice"),
    ("tool_choice unknown", {"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice"),
    ("tool_calls not an array", {"messages": [{"role": "user", "content": "x"},
                                              {"role": "assistant", "content": None, "tool_calls": {}}]},
     "messages[1].tool_calls"),
    ("tool_call arguments not JSON", {"messages": [{"role": "user", "content": "x"}, {
        "role": "assistant", "content": None,
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]},
     "messages[1].tool_calls[0].function.arguments"),
    ("tool_call without name", {"messages": [{"role": "user", "content": "x"}, {
        "role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function", "function": {}}]}]},
     "messages[1].tool_calls[0].function.name"),
]
for what, extra, param in bad:
    st, data = raw({**base, **extra})
    try:
        err = json.loads(data)["error"]
    except Exception:  # noqa: BLE001
        err = {}
    check(st == 400 and err.get("param") == param and err.get("type") == "invalid_request_error",
          f"{what}: {st} {data[:300]!r}")
    ok = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "ok"}], max_tokens=2)
    check(len(ok.choices) == 1, f"after {what}: the server stopped serving")

proc.terminate()
check(proc.wait(timeout=30) == 0, "server exit code")
finish("test_serve_tools")
