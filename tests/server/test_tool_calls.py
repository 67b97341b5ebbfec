"""Tool-call parsers (`strata tool-calls`, the parser `strata serve` runs on chat output) against the
real chat templates as the oracle: for every fixture template, jinja2 renders an assistant message
with tool calls (several calls, unicode, nested JSON, empty arguments, with and without content);
the parser must recover from the rendered assistant text exactly the function names, the argument
objects (values and key order) and the plain content -- fed whole and in small pieces (the
streaming path). Then the rendered text is cut at every point inside the tool-call section and
corrupted: the parser must not fail, an unfinished section stays plain text, and a broken call
never becomes a call."""
import json
import os
import subprocess
import sys
import tempfile

import jinja2
import jinja2.ext
from jinja2.sandbox import SandboxedEnvironment

BIN = os.environ["STRATA_BINARY"]
FIX = os.environ["STRATA_FIXTURES_DIR"]
TDIR = os.path.join(FIX, "templates")
TMP = tempfile.mkdtemp(prefix="strata_tools_")
failures = []
n_checks = 0


def check(cond, msg):
    global n_checks
    n_checks += 1
    if not cond:
        failures.append(msg)


# jinja2 as transformers configures it, but with the mutable sandbox: Kimi-K2's templates append to
# a list while rendering tool calls, which transformers' immutable sandbox refuses (the format they
# render is what matters here).
ENV = SandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
ENV.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: json.dumps(
    x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _raise(msg):
    raise jinja2.exceptions.TemplateError(msg)


ENV.globals["raise_exception"] = _raise

# Each family: the format name strata must detect, where the assistant's turn starts in a render
# and what ends it (format delimiters, read off the templates).
FAMILIES = {
    "Qwen-Qwen3-0.6B.jinja": ("hermes", "<|im_start|>assistant\n", "<|im_end|>"),
    "Kimi-K2-Instruct.jinja": ("kimi_k2", "<|im_assistant|>assistant<|im_middle|>", "<|im_end|>"),
    "Kimi-K2-Thinking.jinja": ("kimi_k2", "<|im_assistant|>assistant<|im_middle|>", "<|im_end|>"),
    "deepseek-ai-DeepSeek-V3.1.jinja": ("deepseek_v31", "<｜Assistant｜>", "<｜end▁of▁sentence｜>"),
    "MiniMax-M2.jinja": ("minimax_m2", "]~b]ai\n", "[e~["),
    # DeepSeek-V3 (tokenizer_config.json): its template renders calls only without content,
    # concatenates the arguments as the client's JSON strings, and closes the section only after a
    # second call, and again after each later one (so only conversations with two calls are an oracle).
    "tokenizers/deepseek_v3": ("deepseek_v31", "<｜Assistant｜>", "<｜end▁of▁sentence｜>"),
}

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather «in» a city",
                                      "parameters": {"type": "object", "properties": {
                                          "city": {"type": "string"}, "unit": {"type": "string"},
                                          "days": {"type": "integer"}, "opts": {"type": "object"},
                                          "tags": {"type": "array"}}}}},
    {"type": "function", "function": {"name": "search", "parameters": {"type": "object", "properties": {
        "query": {"type": "string"}, "top_k": {"type": "integer"}, "filter": {"type": "object"},
        "exact": {"type": "boolean"}, "score": {"type": "number"}}}}},
    {"type": "function", "function": {"name": "no_args", "parameters": {"type": "object", "properties": {}}}},
]


def call(name, args):
    return {"id": "call_x", "type": "function", "function": {"name": name, "arguments": args}}


CASES = {
    "one call, content": ("Let me check.", [call("get_weather", {"city": "Oslo", "unit": "celsius"})]),
    "one call, no content": ("", [call("search", {"query": "jinja2 tojson", "top_k": 3})]),
    "several calls": ("Two lookups.", [call("get_weather", {"city": "Zürich", "days": 2}),
                                       call("search", {"query": "東京 天気 🌦", "exact": True}),
                                       call("get_weather", {"city": "Paris"})]),
    "unicode and escapes": ("Ünïcödé — «ok» 中文 🐋", [call("search", {
        "query": "quote \" backslash \\ tab \t newline-free é \u00a0 ✓", "score": 0.25})]),
    "nested JSON": ("", [call("search", {"query": "nested", "filter": {
        "and": [{"field": "year", "gte": 2020}, {"or": [{"tag": "a"}, {"tag": "b", "w": [1, 2.5, -3, None]}]}],
        "meta": {"z": 1, "a": {"deep": {"deeper": [[], {}]}}}}})]),
    "empty arguments": ("Calling.", [call("no_args", {})]),
    "two calls, nested and empty": ("Both.", [call("search", {"query": "q", "filter": {"a": {"b": [{"c": None}]}}}),
                                              call("no_args", {})]),
    "multi-line content": ("First line.\nSecond line:\n  - item", [call("get_weather", {
        "city": "Rio", "opts": {"x": [1, {"y": "z"}]}, "tags": ["a", "b"]})]),
}


def render(source, content, calls):
    # null content arrives as "" (as vLLM passes it; Qwen3's template fails on None)
    msgs = [{"role": "user", "content": "question"}, {"role": "assistant", "content": content, "tool_calls": calls}]
    return ENV.from_string(source).render(messages=msgs, tools=TOOLS, add_generation_prompt=False)


def assistant_text(rendered, head, end):
    """The assistant's turn as the model would generate it (its reasoning block is another parser's)."""
    t = rendered[rendered.rindex(head) + len(head):]
    t = t[:t.index(end)]
    if t.startswith("<think>"):
        t = t[t.index("</think>") + len("</think>"):].lstrip("\n")
    return t


JOBS = {}  # (template, format) -> [(text, chunk, checker)]: one `strata tool-calls --batch` per key


def parse(template, text, chunk=0, fmt=None, then=None):
    """Queues a parse; then(result) runs once the batch ran (result None: strata failed)."""
    JOBS.setdefault((template, fmt), []).append((text, chunk, then))


def run_jobs():
    tpath = os.path.join(TMP, "tools.json")
    with open(tpath, "w", encoding="utf-8") as f:
        json.dump(TOOLS, f, ensure_ascii=False)
    for (template, fmt), jobs in JOBS.items():
        bpath = os.path.join(TMP, "batch.json")
        with open(bpath, "w", encoding="utf-8") as f:
            json.dump([{"text": t, "chunk": c} for t, c, _ in jobs], f, ensure_ascii=False)
        cmd = [BIN, "tool-calls", "--batch", "@" + bpath, "--tools", "@" + tpath]
        cmd += ["--format", fmt] if fmt else ["--template", template]
        r = subprocess.run(cmd, capture_output=True, timeout=120)
        if r.returncode != 0:
            check(False, f"{template or fmt}: strata tool-calls failed: {r.stderr.decode('utf-8', 'replace')}")
            continue
        results = json.loads(r.stdout.decode("utf-8"))
        check(len(results) == len(jobs), f"{template or fmt}: {len(results)} results for {len(jobs)} texts")
        for (_, _, then), got in zip(jobs, results):
            then(got)


def pairs(obj_text):
    """A JSON object's text -> nested key/value pairs (key order is part of the comparison)."""
    return json.loads(obj_text, object_pairs_hook=lambda kv: ("obj", kv))


def as_pairs(value):
    return pairs(json.dumps(value, ensure_ascii=False))


def check_whole(label, fmt, content, calls, chunk):
    def then(got):
        check(got["format"] == fmt, f"{label}: format {got['format']} != {fmt}")
        names = [c["name"] for c in got["tool_calls"]]
        check(names == [c["function"]["name"] for c in calls], f"{label} chunk={chunk}: names {names}")
        for want, have in zip(calls, got["tool_calls"]):
            check(pairs(have["arguments"]) == as_pairs(want["function"]["arguments"]),
                  f"{label} chunk={chunk}: arguments {have['arguments']} != {want['function']['arguments']}")
        check(got["content"] == content, f"{label} chunk={chunk}: content {got['content']!r} != {content!r}")
        ids = [c["id"] for c in got["tool_calls"]]
        check(len(set(ids)) == len(ids) and all(ids), f"{label}: ids {ids}")
        if fmt == "kimi_k2":  # Kimi's ids are the template's own functions.NAME:IDX
            check(all(i.startswith("functions." + n + ":") for i, n in zip(ids, names)), f"{label}: ids {ids}")
    return then


def check_cut(label, calls, part, full):
    def then(g):
        check(len(g["tool_calls"]) < len(calls) or part == full.rstrip(),
              f"{label}: {len(g['tool_calls'])} calls from a cut text {part!r}")
        if not g["tool_calls"]:
            check(g["content"] == part, f"{label}: content {g['content']!r} != text {part!r}")
        for c in g["tool_calls"]:  # what was parsed is a true prefix of the calls
            want = calls[c["index"]]["function"]
            check(c["name"] == want["name"] and pairs(c["arguments"]) == as_pairs(want["arguments"]),
                  f"{label}: a wrong call {c}")
    return then


def check_corrupt(label, calls, content):
    def then(g):
        for c in g["tool_calls"]:
            want = [x["function"] for x in calls if x["function"]["name"] == c["name"]]
            check(any(pairs(c["arguments"]) == as_pairs(w["arguments"]) for w in want), f"{label}: a wrong call {c}")
        if len(g["tool_calls"]) < len(calls):
            check(len(g["content"]) > len(content), f"{label}: the broken call vanished: {g}")
    return then


for tname, (fmt, head, end) in FAMILIES.items():
    if tname.startswith("tokenizers/"):
        path = os.path.join(FIX, tname)
        source = json.load(open(os.path.join(path, "tokenizer_config.json"), encoding="utf-8"))["chat_template"]
    else:
        path = os.path.join(TDIR, tname)
        source = open(path, encoding="utf-8").read()
    for cname, (content, calls) in CASES.items():
        label = f"{tname} / {cname}"
        if tname == "tokenizers/deepseek_v3":
            if len(calls) != 2:  # its template closes the section after the second call (and each later one)
                continue
            string_calls = [{**c, "function": {**c["function"], "arguments": json.dumps(
                c["function"]["arguments"], ensure_ascii=False)}} for c in calls]
            text = assistant_text(render(source, None, string_calls), head, end)
            content = ""
        else:
            text = assistant_text(render(source, content, calls), head, end)
        for chunk in (0, 1, 7):
            parse(path, text, chunk, then=check_whole(label, fmt, content, calls, chunk))
        # Cut anywhere from the section's start: an unclosed section is plain text.
        first = text.find("<", len(content))
        for cut in range(first, len(text), max(1, (len(text) - first) // 40)):
            for chunk in (0, 3):
                parse(path, text[:cut], chunk, then=check_cut(f"{label} cut at {cut}", calls, text[:cut], text))
        # Corrupted calls: a broken call is not a call, and nothing is lost from the text.
        for bad_from, bad_to in (('{"', '{'), ('">', '>'), ("}", "]"), (">", ">>x")):
            k = text.find(bad_from, len(content))
            if k >= 0:
                broken = text[:k] + bad_to + text[k + len(bad_from):]
                parse(path, broken, 0, then=check_corrupt(f"{label} corrupted {bad_from!r}", calls, content))

# Plain text without any section is returned as is, whatever the format.
for fmt in ("hermes", "kimi_k2", "deepseek_v31", "minimax_m2", "none"):
    for text in ("", "plain answer", "  spaced  \n\n", "a < b and <tool", "<tool_call>", "<minimax:tool_call>\n",
                 "<|tool_calls_section_begin|>", "<｜tool▁calls▁begin｜>x"):
        parse(None, text, 0, fmt, then=lambda g, text=text, fmt=fmt: check(
            g["content"] == text and g["tool_calls"] == [], f"{fmt}: plain text {text!r} -> {g}"))

run_jobs()
print(f"{n_checks} checks, {len(failures)} failed")
for f in failures[:30]:
    print("FAIL:", f)
sys.exit(1 if failures else 0)
