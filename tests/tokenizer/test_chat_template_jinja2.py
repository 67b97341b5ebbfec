"""Differential test: `strata chat-template` vs Python jinja2 (pinned in tests/requirements.txt)
configured exactly as transformers' apply_chat_template configures it (ImmutableSandboxedEnvironment,
trim_blocks, lstrip_blocks, loopcontrols, the {% generation %} tag, transformers' tojson,
raise_exception, strftime_now). Renders every fixture template (and each tokenizer_config.json
chat_template, with its special tokens) on many conversations -- tools, tool calls, multi-turn,
reasoning_content, system prompts, list contents, unicode, with and without the generation
prompt -- plus small templates that exercise the language itself, and generated ones (random
expressions, random statement soups, randomly edited real templates). Outputs must be identical
byte for byte; where jinja2 raises, strata must fail too. A fresh seed each run for the random
conversations (printed; STRATA_CHAT_SEED reproduces a failure)."""
import json
import os
import random
import subprocess
import sys
import tempfile
import warnings
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

# jinja2 compiles generated templates to Python; constant subscripts like `true[1:]` make Python warn.
warnings.filterwarnings("ignore", category=SyntaxWarning)

BIN = os.environ["STRATA_BINARY"]
FIX = os.environ["STRATA_FIXTURES_DIR"]
N_RANDOM = int(os.environ.get("STRATA_CHAT_RANDOM", "60"))
N_FUZZ = int(os.environ.get("STRATA_CHAT_FUZZ", "150"))


# ---- the reference: jinja2 set up the way transformers' _compile_jinja_template does ---------------
class GenerationTag(jinja2.ext.Extension):
    """transformers' AssistantTracker without the tracking: {% generation %} renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


ENV = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                    extensions=[GenerationTag, jinja2.ext.loopcontrols])
ENV.filters["tojson"] = tojson
ENV.globals["raise_exception"] = raise_exception
ENV.globals["strftime_now"] = strftime_now


def reference(source, messages, tools=None, add_generation_prompt=False, special=None, extra=None):
    """(ok, text-or-error) as transformers' render_jinja_template would produce."""
    kwargs = dict(special or {})
    kwargs.update(extra or {})
    try:
        tpl = ENV.from_string(source)
        return True, tpl.render(messages=messages, tools=tools, documents=None,
                                add_generation_prompt=add_generation_prompt, **kwargs)
    except Exception as e:  # noqa: BLE001 - any failure is a failure to render
        return False, f"{type(e).__name__}: {e}"


# ---- the system under test ----------------------------------------------------------------------------
TMP = tempfile.mkdtemp(prefix="strata_chat_")


def strata(template_path, messages, tools=None, add_generation_prompt=False, extra=None):
    mfile = os.path.join(TMP, "messages.json")
    with open(mfile, "w", encoding="utf-8") as f:
        json.dump(messages, f, ensure_ascii=False)
    cmd = [BIN, "chat-template", "--template", template_path, "--messages", "@" + mfile]
    if add_generation_prompt:
        cmd.append("--generation-prompt")
    if tools is not None:
        tfile = os.path.join(TMP, "tools.json")
        with open(tfile, "w", encoding="utf-8") as f:
            json.dump(tools, f, ensure_ascii=False)
        cmd += ["--tools", "@" + tfile]
    if extra:
        vfile = os.path.join(TMP, "vars.json")
        with open(vfile, "w", encoding="utf-8") as f:
            json.dump(extra, f, ensure_ascii=False)
        cmd += ["--vars", "@" + vfile]
    r = subprocess.run(cmd, capture_output=True, timeout=60)
    if r.returncode != 0:
        return False, r.stderr.decode("utf-8", "replace").strip()
    return True, r.stdout.decode("utf-8")


# ---- comparison ----------------------------------------------------------------------------------------
passed = 0
failures = []
outcomes = {"identical output": 0, "both raised": 0, "strata refused as unsupported": 0}


def first_diff(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def compare(label, source, template_path, messages, tools=None, gen=False, special=None, extra=None,
            allow_unsupported=False):
    """allow_unsupported: generated templates may use what strata refuses by design (it must then
    fail with an "unsupported" error, e.g. printing a generator, whose repr holds an address)."""
    global passed
    want_ok, want = reference(source, messages, tools, gen, special, extra)
    got_ok, got = strata(template_path, messages, tools, gen, extra)
    if want_ok and got_ok and want == got:
        passed += 1
        outcomes["identical output"] += 1
        return
    if allow_unsupported and want_ok and not got_ok and "unsupported" in got:
        passed += 1
        outcomes["strata refused as unsupported"] += 1
        return
    if not want_ok and not got_ok:
        if "line" not in got:
            failures.append(f"{label}: strata's error does not name a line: {got}")
        else:
            passed += 1
            outcomes["both raised"] += 1
        return
    msg = [f"{label}: messages={json.dumps(messages, ensure_ascii=False)[:400]}"
           f" tools={'yes' if tools else 'no'} generation_prompt={gen} vars={extra}"]
    if want_ok and got_ok:
        k = first_diff(want, got)
        msg.append(f"  differ at char {k}: jinja2 {want[max(0, k - 40):k + 60]!r}")
        msg.append(f"                      strata {got[max(0, k - 40):k + 60]!r}")
    elif want_ok:
        msg.append(f"  jinja2 rendered {want[:200]!r}\n  strata failed: {got}")
    else:
        msg.append(f"  jinja2 failed: {want}\n  strata rendered {got[:200]!r}")
    failures.append("\n".join(msg))


# ---- conversations -------------------------------------------------------------------------------------
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather for a city, e.g. «Zürich» or 東京.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7.5}},
        "required": ["city"]}}}
SEARCH_TOOL = {"type": "function", "function": {
    "name": "search", "description": "Search the web \"quoted\" and \\ backslashed",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}, "top_k": {"type": "integer"}},
                   "required": ["query"]}}}
TOOLS = [WEATHER_TOOL, SEARCH_TOOL]


def call(name, args, as_string=False, cid=None):
    c = {"type": "function", "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False) if as_string else args}}
    if cid:
        c["id"] = cid
    return c


def conversations():
    sys_msg = {"role": "system", "content": "You are a terse assistant."}
    convs = {
        "single_user": [{"role": "user", "content": "Hello! Who are you?"}],
        "system_multi_turn": [sys_msg, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
                              {"role": "user", "content": "And times 3?"}],
        "ends_with_assistant": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}],
        "two_systems": [sys_msg, {"role": "system", "content": "Second system."}, {"role": "user", "content": "x"}],
        "unicode": [{"role": "user", "content": "Ünïcödé 🐋 — «quotes» 中文 日本語 한국어 עברית العربية\n\ttabs\\n"},
                    {"role": "assistant", "content": "Ça va? 👍🏽 \u200b zero-width \u00a0nbsp"},
                    {"role": "user", "content": "<|im_end|> {{ not a template }} {% neither %}"}],
        "whitespace": [{"role": "user", "content": "  leading and trailing  \n\n"},
                       {"role": "assistant", "content": "\n\nanswer\n"}, {"role": "user", "content": ""}],
        "think_in_content": [{"role": "user", "content": "q1"},
                             {"role": "assistant", "content": "<think>\nlet me think\n</think>\n\nThe answer."},
                             {"role": "user", "content": "q2"},
                             {"role": "assistant", "content": "<think>again</think>second"}],
        "reasoning_content": [sys_msg, {"role": "user", "content": "q1"},
                              {"role": "assistant", "content": "A1", "reasoning_content": "because 1"},
                              {"role": "user", "content": "q2"},
                              {"role": "assistant", "content": "A2", "reasoning_content": "because 2"}],
        "tool_call_dict_args": [sys_msg, {"role": "user", "content": "Weather in Paris?"},
                                {"role": "assistant", "content": "", "tool_calls": [call("get_weather", {"city": "Paris", "days": 2})]},
                                {"role": "tool", "content": "{\"temp\": 21.5, \"sky\": \"clear\"}", "name": "get_weather"},
                                {"role": "assistant", "content": "It is 21.5°C and clear."}],
        "tool_call_string_args": [{"role": "user", "content": "Search twice"},
                                  {"role": "assistant", "content": "Sure.", "tool_calls": [
                                      call("search", {"query": "jinja2"}, as_string=True, cid="call_1"),
                                      call("search", {"query": "ünïcode", "top_k": 3}, as_string=True, cid="call_2")]},
                                  {"role": "tool", "content": "result one", "tool_call_id": "call_1"},
                                  {"role": "tool", "content": "result two", "tool_call_id": "call_2"}],
        # What `strata serve` passes for OpenAI tool calls (as vLLM does): arguments decoded to
        # objects, null content as "", tool results with tool_call_id; several calls, unicode, nested JSON.
        "tool_calls_api_shape": [sys_msg, {"role": "user", "content": "Weather in Zürich and 東京, then search."},
                                 {"role": "assistant", "content": "", "tool_calls": [
                                     call("get_weather", {"city": "Zürich", "unit": "celsius"}, cid="call_a"),
                                     call("get_weather", {"city": "東京", "days": 3}, cid="call_b"),
                                     call("search", {"query": "nested", "filter": {"and": [{"y": 2020}, {"or": [
                                         None, True, 2.5, "«q»"]}], "meta": {}}}, cid="call_c")]},
                                 {"role": "tool", "content": "{\"temp\": 3}", "tool_call_id": "call_a"},
                                 {"role": "tool", "content": "晴れ 🌞", "tool_call_id": "call_b"},
                                 {"role": "tool", "content": "", "tool_call_id": "call_c"},
                                 {"role": "assistant", "content": "Cold in Zürich, sunny in 東京."},
                                 {"role": "user", "content": "And tomorrow?"}],
        "tool_calls_two_rounds": [{"role": "user", "content": "Plan a trip"},
                                  {"role": "assistant", "content": "Checking the weather first.", "tool_calls": [
                                      call("get_weather", {"city": "Rome"}, cid="c1")]},
                                  {"role": "tool", "content": "warm", "tool_call_id": "c1", "name": "get_weather"},
                                  {"role": "assistant", "content": "", "tool_calls": [
                                      call("search", {"query": "Rome hotels", "top_k": 5}, cid="c2")]},
                                  {"role": "tool", "content": "Hotel A\nHotel B", "tool_call_id": "c2"}],
        "tool_then_user": [{"role": "user", "content": "weather?"},
                           {"role": "assistant", "content": None, "tool_calls": [call("get_weather", {"city": "Oslo"})]},
                           {"role": "tool", "content": "cold"},
                           {"role": "assistant", "content": "Cold."},
                           {"role": "user", "content": "thanks"}],
        "tool_call_with_reasoning": [{"role": "user", "content": "weather?"},
                                     {"role": "assistant", "content": "", "reasoning_content": "need the tool",
                                      "tool_calls": [call("get_weather", {"city": "Rome", "unit": "celsius"})]},
                                     {"role": "tool", "content": "warm"}],
        "list_content": [{"role": "user", "content": [{"type": "text", "text": "Describe"},
                                                       {"type": "image", "image": "x.png"},
                                                       {"type": "text", "text": " this."}]},
                         {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]}],
        "named_messages": [{"role": "user", "content": "hi", "name": "alice"},
                           {"role": "assistant", "content": "hello alice", "name": "bot"}],
        "tool_response_in_user": [{"role": "user", "content": "<tool_response>\nx\n</tool_response>"},
                                  {"role": "user", "content": "real question"}],
        "empty": [],
    }
    return convs


def random_conversation(rng):
    texts = ["hi", "Hello, world!", "", " ", "\n", "a\nb\n", "日本語のテキスト", "emoji 🐋🚀👩‍💻", "<think>x</think>y",
             "</think>", "tab\there", "quote ' and \"", "back\\slash", "{{ x }}", "{% if %}", "#}", "ﬁ Å Ω",
             "very " * 30 + "long", "<tool_response>\nr\n</tool_response>", "\u2028line sep", "null \u0000 byte"]
    msgs = []
    if rng.random() < 0.4:
        msgs.append({"role": "system", "content": rng.choice(texts)})
    for _ in range(rng.randint(1, 6)):
        msgs.append({"role": "user", "content": rng.choice(texts)})
        if rng.random() < 0.7:
            m = {"role": "assistant", "content": rng.choice(texts)}
            if rng.random() < 0.3:
                m["reasoning_content"] = rng.choice(texts)
            if rng.random() < 0.3:
                m["tool_calls"] = [call("get_weather", {"city": rng.choice(texts)}, as_string=rng.random() < 0.5)]
                msgs.append(m)
                msgs.append({"role": "tool", "content": rng.choice(texts)})
                continue
            msgs.append(m)
    return msgs


# ---- templates -------------------------------------------------------------------------------------------
def special_tokens(config):
    out = {}
    for k in ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]:
        v = config.get(k)
        if isinstance(v, dict):
            v = v.get("content")
        if v is not None:
            out[k] = str(v)
    return out


def fixture_templates():
    """(label, source, path strata loads, special tokens jinja2 gets)"""
    out = []
    tdir = os.path.join(FIX, "templates")
    for name in sorted(os.listdir(tdir)):
        path = os.path.join(tdir, name)
        with open(path, encoding="utf-8") as f:
            out.append((name, f.read(), path, {}))
    tok = os.path.join(FIX, "tokenizers")
    for name in sorted(os.listdir(tok)):
        cfg_path = os.path.join(tok, name, "tokenizer_config.json")
        if not os.path.exists(cfg_path):
            continue
        with open(cfg_path, encoding="utf-8") as f:
            cfg = json.load(f)
        if isinstance(cfg.get("chat_template"), str):
            out.append((f"tokenizers/{name}", cfg["chat_template"], os.path.join(tok, name), special_tokens(cfg)))
    return out


# Small templates that exercise the language; each renders with DATA as extra variables.
DATA = {"s": "Hello World", "n": 7, "f": 2.5, "neg": -3, "big": 12345678901, "t": True, "z": None, "e": "",
        "l": [3, 1, 2], "sl": ["b", "A", "c", "a"], "nested": {"a": {"b": [1, {"c": "deep"}]}},
        "d": {"z": 1, "a": 2, "m": {"k": [1, 2]}}, "u": "Ünïcödé ß ǅ", "ws": " \t x y \n",
        "objs": [{"name": "b", "v": 2, "on": True}, {"name": "A", "v": 1, "on": False}, {"name": "c", "v": 3}],
        "fl": [1.0, 0.1, 1e-07, 1e16, 123.456, -0.0, 1e300]}
FEATURES = [
    # output of values: Python's str() and repr()
    "{{ n }} {{ f }} {{ t }} {{ z }} {{ e }} {{ l }} {{ d }} {{ nested }} {{ fl }} {{ big }}",
    "{{ undefined_var }}|{{ undefined_var is defined }}|{{ z is none }}|{{ l is iterable }}",
    "{{ (1, 2) }} {{ (1,) }} {{ () }} {{ [] }} {{ {} }} {{ 'it\\'s' }} {{ [\"it's\", 'a\"b', 'x\\ny'] }}",
    "{{ 1/3 }} {{ 10/2 }} {{ 7//2 }} {{ -7//2 }} {{ 7%3 }} {{ -7%3 }} {{ 2**10 }} {{ 2**-1 }} {{ 7.5//2 }} {{ -7.5%2 }}",
    "{{ 1 + 2 * 3 - 4 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ 'ab' * 3 }} {{ [1] * 2 }} {{ [1] + [2] }} {{ 'a' ~ 1 ~ none ~ true }}",
    "{{ 1 == 1.0 }} {{ 1 < 2 < 3 }} {{ 'a' < 'b' }} {{ [1,2] < [1,3] }} {{ 'x' in 'xyz' }} {{ 2 not in l }} {{ 'a' in d }}",
    "{{ n > 5 and s }} {{ z or 'fallback' }} {{ e or z }} {{ not e }} {{ 0 and 1 }} {{ [] or {} }}",
    "{{ 'yes' if t else 'no' }} {{ 'yes' if z }}|{{ ('x' if false) is defined }}",
    # strings
    "{{ s.upper() }} {{ s.lower() }} {{ s.title() }} {{ 'they\\'re bill\\'s'.title() }} {{ u.upper() }} {{ u.lower() }} {{ u|title }} {{ 'hELLO wORLD'|capitalize }}",
    "{{ s.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ 'a b c'.rsplit(' ', 1) }} {{ ws.split() }} {{ ws.split(None, 1) }} {{ ws.rsplit(None, 1) }}",
    "[{{ ws.strip() }}] [{{ ws.lstrip() }}] [{{ ws.rstrip() }}] [{{ 'xxhixx'.strip('x') }}] [{{ ws|trim }}] [{{ 'abcab'|trim('ab') }}]",
    "{{ s.startswith('Hell') }} {{ s.endswith(('x', 'ld')) }} {{ s.startswith('World', 6) }} {{ s.find('o') }} {{ s.rfind('o') }} {{ u.find('ß') }} {{ s.count('l') }}",
    "{{ s.replace('l', 'L') }} {{ s.replace('l', 'L', 2) }} {{ s|replace('o', '0') }} {{ 'abc'.replace('', '-') }} {{ s|replace('l', 'L', 1) }}",
    "{{ s[0] }} {{ s[-1] }} {{ s[1:4] }} {{ s[::-1] }} {{ s[::2] }} {{ u[1:5] }} {{ u[::-1] }} {{ l[1:] }} {{ l[:-1] }} {{ l[::-1] }} {{ s[100] }}|{{ l[10] }}|",
    "{{ '{} and {}'.format(1, 'b') }} {{ '{0}-{0}-{x}'.format(5, x='y') }} {{ '{:>6}|{:<4}|{:^7}|{:05d}|{:.2f}|{:,}'.format('ab', 'c', 'mid', 42, 3.14159, 1234567) }}",
    "{{ '%s is %d years, %.2f%%' % ('Bob', 42, 99.5) }} {{ '%(a)s=%(b)r' % {'a': 1, 'b': 'x'} }} {{ '%5s|%-5s|%03d' % ('a', 'b', 7) }} {{ '%s'|format('f') }} {{ '%s-%s'|format(1, 2) }}",
    "{{ s.isupper() }} {{ 'ABC'.isupper() }} {{ 'abc'.islower() }} {{ '123'.isdigit() }} {{ 'ab1'.isalnum() }} {{ ' '.isspace() }} {{ 'Hello World'.istitle() }}",
    "{{ 'a-b-c'.partition('-') }} {{ 'a-b-c'.rpartition('-') }} {{ 'x'.center(5, '*') }} {{ 'x'.ljust(3, '.') }}|{{ 'x'.rjust(3) }} {{ '42'.zfill(5) }} {{ 'a\\nb\\r\\nc'.splitlines() }}",
    "{{ 'prefix_x'.removeprefix('prefix_') }} {{ 'x.txt'.removesuffix('.txt') }} {{ '-'.join(['a', 'b']) }} {{ sl|join(', ') }} {{ objs|join('|', attribute='name') }}",
    # filters
    "{{ l|length }} {{ s|length }} {{ u|length }} {{ d|length }} {{ l|count }} {{ l|first }} {{ l|last }} {{ s|first }} {{ d|first }} {{ l|sum }} {{ l|min }} {{ l|max }}",
    "{{ l|sort }} {{ sl|sort }} {{ sl|sort(case_sensitive=true) }} {{ sl|sort(reverse=true) }} {{ objs|sort(attribute='v')|map(attribute='name')|list }} {{ objs|sort(attribute='name')|map(attribute='v')|list }}",
    "{{ sl|unique|list }} {{ ['a','A','b']|unique(case_sensitive=true)|list }} {{ l|reverse|list }} {{ s|reverse }} {{ d|dictsort }} {{ d|dictsort(reverse=true) }} {{ sl|max }} {{ sl|min(case_sensitive=true) }}",
    "{{ d|items|list }} {{ d.items()|list }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.keys() }} {{ d.items() }} {{ d.get('a') }} {{ d.get('q') }} {{ d.get('q', 'dflt') }}",
    "{{ objs|map(attribute='name')|join(',') }} {{ l|map('string')|list }} {{ sl|map('upper')|list }} {{ objs|map(attribute='on', default='?')|list }} {{ objs|selectattr('on')|list|length }}",
    "{{ objs|selectattr('v', 'gt', 1)|map(attribute='name')|list }} {{ objs|rejectattr('on')|list }} {{ l|select('odd')|list }} {{ l|reject('even')|list }} {{ [0, 1, '', 'x', none]|select|list }}",
    "{{ objs|selectattr('name', 'equalto', 'A')|first }} {{ objs|selectattr('on', 'defined')|list|length }} {{ objs|rejectattr('on', 'undefined')|map(attribute='name')|list }}",
    "{{ undefined_var|default('dv') }} {{ z|default('dz') }} {{ e|default('de', true) }} {{ undefined_var|d('x') }} {{ undefined_var|length }} {{ undefined_var|list }} {{ undefined_var|string }}|",
    "{{ '42'|int }} {{ '4.7'|int }} {{ 4.7|int }} {{ 'x'|int }} {{ 'x'|int(-1) }} {{ '0x1A'|int(0, 16) }} {{ '3.5'|float }} {{ 'y'|float }} {{ 7|float }} {{ true|int }}",
    "{{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 7|round }} {{ 2.1|round(0, 'ceil') }} {{ 2.9|round(0, 'floor') }} {{ -3|abs }} {{ -2.5|abs }}",
    "{{ l|string }} {{ 5|string }} {{ n|string + 'x' }} {{ s|lower }} {{ s|upper }} {{ s|wordcount }} {{ 'Hello world foo'|truncate(9) }} {{ ('word ' * 60)|truncate(20) }}",
    "{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(first=true, blank=true) }}|{{ 'x'|center(7) }}|",
    "{{ l|batch(2)|list }} {{ l|batch(2, 0)|list }} {{ [1,2,3,4]|sum(start=10) }} {{ objs|sum(attribute='v') }} {{ nested.a.b[1].c }} {{ nested['a']['b'][0] }} {{ objs|map(attribute='name')|map('lower')|list }}",
    # tojson (transformers' version: ensure_ascii=False, indent, separators, sort_keys)
    "{{ d|tojson }} {{ nested|tojson }} {{ u|tojson }} {{ fl|tojson }} {{ [none, true, false, 'q\"\\\\'] |tojson }} {{ 'x\\u0001\\n\\t'|tojson }}",
    "{{ d|tojson(indent=2) }}\n{{ objs|tojson(indent=4) }}\n{{ d|tojson(sort_keys=true) }} {{ d|tojson(separators=(',', ':')) }} {{ u|tojson(ensure_ascii=true) }} {{ [[], {}]|tojson(indent=1) }}",
    # tests
    "{{ n is number }} {{ f is float }} {{ n is integer }} {{ t is boolean }} {{ t is number }} {{ s is string }} {{ d is mapping }} {{ l is sequence }} {{ d is iterable }} {{ s is mapping }}",
    "{{ n is odd }} {{ n is even }} {{ 9 is divisibleby 3 }} {{ n is eq 7 }} {{ n is ne 7 }} {{ n is gt 3 }} {{ n is lt 3 }} {{ n is ge 7 }} {{ 'a' is in 'abc' }} {{ 'x' is in l }} {{ s is lower }} {{ 'ABC' is upper }}",
    "{{ t is true }} {{ t is false }} {{ z is sameas none }} {{ n is not none }} {{ undefined_var is undefined }} {{ 'upper' is filter }} {{ 'odd' is test }} {{ range is callable }}",
    # control flow and scoping
    "{% for x in l %}{{ loop.index }}/{{ loop.length }}:{{ x }}{% if not loop.last %},{% endif %}{% endfor %}",
    "{% for x in l %}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.previtem }}-{{ loop.nextitem }}|{% endfor %}",
    "{% for x in sl if x.islower() %}{{ x }}{{ loop.length }}{% else %}none{% endfor %}{% for x in [] %}x{% else %}empty{% endfor %}",
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }}{% endfor %}",
    "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x > 5 %}{% break %}{% endif %}{{ x }}{% endfor %}{{ range(3) }} {{ range(1, 10, 3)|list }}",
    "{% for x in l %}{{ loop.cycle('a', 'b') }}{{ loop.changed(x > 1) }}{% endfor %} {% for r in [[1, 2], [3]] %}{% for c in r %}{{ loop.depth }}{{ c }}{% endfor %}{% endfor %}",
    "{% set x = 1 %}{% for i in l %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}",
    "{% set ns = namespace(total=0, items=[]) %}{% for i in l %}{% set ns.total = ns.total + i %}{% endfor %}{{ ns.total }} {{ ns.items }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set t = 3, 4 %}{{ t }}{% set blk %}  block {{ a }} {% endset %}[{{ blk }}]{% set blk2 | upper | trim %} x{{ b }} {% endset %}[{{ blk2 }}]",
    "{% if n > 10 %}big{% elif n > 5 %}mid{% else %}small{% endif %}{% if undefined_var %}u{% endif %}{% if z is none and not e %}ok{% endif %}",
    "{% with a = 5, b = n %}{{ a + b }}{% endwith %}{{ a }}|{% filter upper %}shout {{ s }}{% endfilter %}",
    "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', '?') }} {{ greet(punct='.', name='X') }} {{ greet() }}",
    "{% macro m(a, b=a ~ 'x') %}{{ a }}{{ b }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1) }}{{ m(1, 2, 3, k=4) }}",
    "{% macro rec(n) %}{% if n > 0 %}{{ n }}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(5) }}",
    "{% macro outer() %}[{{ caller() }}]{% endmacro %}{% call outer() %}inside {{ s }}{% endcall %}{% macro two(x) %}{{ caller(x * 2) }}{% endmacro %}{% call(v) two(4) %}v={{ v }}{% endcall %}",
    "{% macro m() %}{{ late }}{% endmacro %}{% set late = 1 %}{{ m() }}{% set late = 2 %}{{ m() }}",
    "{% for item in [{'c': [{'c': []}, {'c': [{'c': []}]}]}] recursive %}<{{ loop.depth }}{{ loop(item.c) }}>{% endfor %}",
    "{{ dict(a=1, b=2) }} {{ dict({'x': 1}, y=2) }} {{ namespace(a=1) is mapping }} {% set j = joiner(', ') %}{% for x in l %}{{ j() }}{{ x }}{% endfor %}",
    "{% generation %}gen {{ s }}{% endgeneration %}|{% raw %}{{ raw }} {% not a tag %}{% endraw %}",
    # whitespace control (trim_blocks, lstrip_blocks, - and +)
    "a\n  {% if true %}\n  b\n  {% endif %}\n  c {# note #}\n{{ 1 }}  \n{%- if 1 %} d {% endif -%}\n e\n",
    "  {%+ if true %}x{% endif %}\n  {%- if true -%}  y  {%- endif -%}  \n{{- ' z ' -}}  \n\t{# c #}\n  {{ 'v' }}\n",
    "{% for x in l %}\n  {{ x }}\n{% endfor %}\n{% for x in l -%}\n  {{ x }}\n{%- endfor %}\n",
    "line1\r\nline2\r{% if true %}\r\nline3{% endif %}\n\n",
    "{{ 'adjacent' 'strings' }} {{ \"\\u00e9\\x41\\t|\\101\" }} {{ '\\N' }}",
    # errors (both must fail)
    "{{ raise_exception('custom failure') }}",
    "{{ undefined_var.attr }}",
    "{{ l + 1 }}",
    "{{ 1 / 0 }}",
    "{% set x = [] %}{{ x.append(1) }}",
    "{{ d.pop('a') }}",
    "{{ range(200000)|length }}",
    "{{ l|selectattr('x')|length }}",
    "{% for x in %}{% endfor %}",
    "{% if true %}unclosed",
    "{{ l|nosuchfilter }}",
    "{{ n is nosuchtest }}",
    "{% set ns = namespace(a=1) %}{% set d.a = 2 %}",
    "{{ 'abc' | tojson(indent='x') }}",
    "{{ undefined_var|tojson }}",
    "{{ nested.a.b[1].c.d.e }}",
]


# ---- generated templates: random expressions and mutated real templates ---------------------------------
ATOMS = ["1", "0", "-3", "2.5", "0.1", "1e20", "1e-5", "true", "false", "none", "''", "'abc'", "'Hello World'",
         "' x y '", "'ünï ß'", "'a,b'", "[]", "[1, 2, 3]", "['b', 'a']", "(1, 'x')", "{}", "{'k': 1, 'a': [2]}", "s",
         "n", "f", "l", "d", "sl", "objs", "nested", "u", "ws", "z", "e", "t", "undefined_x", "range(4)", "objs[0]",
         "d.m", "'%s'", "'{}'"]
FILTERS = ["length", "string", "list", "first", "last", "lower", "upper", "title", "capitalize", "trim", "tojson",
           "sort", "reverse", "unique", "join", "join(', ')", "default('D')", "default('D', true)", "int", "float",
           "abs", "round", "round(1)", "sum", "min", "max", "items", "dictsort", "map('string')", "select", "reject",
           "selectattr('v')", "map(attribute='name')", "replace('a', 'Z')", "center(9)", "indent(2)", "truncate(5)",
           "wordcount", "batch(2)", "tojson(indent=1)", "tojson(sort_keys=true)", "count", "format(1)", "d('x')",
           "list|length", "sort(reverse=true)"]
TESTS = ["defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "iterable", "sequence",
         "boolean", "true", "false", "odd", "even", "divisibleby(2)", "eq 1", "in [1, 'a']", "lower", "upper",
         "callable", "sameas none", "gt 1", "ge 0"]
METHODS = ["upper()", "lower()", "strip()", "split()", "split(',')", "startswith('a')", "endswith('d')",
           "replace('l', 'L')", "title()", "find('o')", "count('l')", "get('k')", "get('zz', 5)", "items()", "keys()",
           "values()", "index(1)", "isdigit()", "join(['x', 'y'])", "format(1, 2)", "rsplit(' ', 1)", "lstrip('H')",
           "copy()", "capitalize()"]
BINOPS = ["+", "-", "*", "/", "//", "%", "**", "~", "==", "!=", "<", ">=", "in", "not in", "and", "or"]
SUBSCRIPTS = ["0", "-1", "1:", ":2", "::-1", "'k'", "5", "1:3:2"]


def random_expression(rng, depth=0):
    r = rng.random()
    if depth > 3 or r < 0.25:
        return rng.choice(ATOMS)
    sub = lambda: random_expression(rng, depth + 1)  # noqa: E731
    if r < 0.45:
        return f"{sub()}|{rng.choice(FILTERS)}"
    if r < 0.55:
        return f"({sub()} is {'not ' if rng.random() < 0.3 else ''}{rng.choice(TESTS)})"
    if r < 0.65:
        return f"{rng.choice(ATOMS)}.{rng.choice(METHODS)}"
    if r < 0.8:
        return f"({sub()} {rng.choice(BINOPS)} {sub()})"
    if r < 0.85:
        return f"{sub()}[{rng.choice(SUBSCRIPTS)}]"
    if r < 0.9:
        return f"({sub()} if {sub()} else {sub()})"
    if r < 0.95:
        return f"(not {sub()})"
    return f"[{sub()}, {sub()}]"


def random_block(rng, depth=0):
    """Statements that exercise scoping (loops, set, namespace, macros, set/filter/with blocks),
    loop controls and whitespace control."""
    ws = lambda: rng.choice(["", "", " ", "\n", "  ", "\n  ", " \n", "\t", "\n\n", "  \n  "])  # noqa: E731
    lt = lambda: "{%" + rng.choice(["", "", "-", "+"]) + " "  # noqa: E731
    rt = lambda: " " + rng.choice(["", "", "-", "+"]) + "%}"  # noqa: E731
    value = lambda: rng.choice([  # noqa: E731
        "x", "y", "i", "item", "acc", "n", "s", "l", "ns.v", "ns.lst", "loop.index", "loop.first", "loop.length",
        "x ~ y", "n + 1", "acc ~ '.'", "l|length", "i * 2", "item.name if item is mapping else item", "m(1)",
        "m('a', b='z')", "caller is defined", "loop.previtem", "loop.cycle('p', 'q')", "'k'"])
    cond = lambda: rng.choice(["x", "not y", "i > 1", "loop.last", "item is string", "n is even", "acc",  # noqa: E731
                               "ns.v == 2", "l and x", "loop.index0 % 2", "i in [1, 2]", "undefined_v is defined"])
    seq = lambda: rng.choice(["l", "[1, 2, 3]", "range(3)", "objs", "'ab'", "d", "d.items()", "[]", "sl|sort",  # noqa: E731
                              "objs|map(attribute='name')"])
    sub = lambda: random_block(rng, depth + 1)  # noqa: E731
    out = []
    for _ in range(rng.randint(1, 4)):
        r = rng.random()
        out.append(ws())
        if r < 0.2 or depth > 2:
            out.append("{{" + rng.choice(["", "-"]) + " " + value() + " " + rng.choice(["", "-"]) + "}}")
        elif r < 0.35:
            out.append(f"{lt()}if {cond()}{rt()}{sub()}"
                       + (f"{lt()}elif {cond()}{rt()}{sub()}" if rng.random() < 0.3 else "")
                       + (f"{lt()}else{rt()}{sub()}" if rng.random() < 0.4 else "") + f"{lt()}endif{rt()}")
        elif r < 0.5:
            target = rng.choice(["x", "i", "item", "(i, x)", "k, v"])
            out.append(f"{lt()}for {target} in {seq()}" + (f" if {cond()}" if rng.random() < 0.2 else "")
                       + f"{rt()}{sub()}"
                       + (f"{lt()}{rng.choice(['break', 'continue'])}{rt()}" if rng.random() < 0.2 else "")
                       + (f"{lt()}else{rt()}{sub()}" if rng.random() < 0.2 else "") + f"{lt()}endfor{rt()}")
        elif r < 0.65:
            out.append(f"{lt()}set {rng.choice(['x', 'y', 'i', 'item', 'acc', 'n', 's', 'l'])} = {value()}{rt()}")
        elif r < 0.72:
            out.append(f"{lt()}set ns.{rng.choice(['v', 'lst', 'w'])} = {value()}{rt()}")
        elif r < 0.78:
            out.append(f"{lt()}set {rng.choice(['x', 'y', 'acc', 'l'])}{rt()}{sub()}{lt()}endset{rt()}")
        elif r < 0.84:
            out.append(f"{lt()}macro m(a, b=x){rt()}{sub()}{{{{ a }}}}{{{{ b }}}}{lt()}endmacro{rt()}")
        elif r < 0.88:
            out.append(f"{lt()}with x = {value()}{rt()}{sub()}{lt()}endwith{rt()}")
        elif r < 0.92:
            out.append(f"{lt()}filter upper{rt()}{sub()}{lt()}endfilter{rt()}")
        elif r < 0.96:
            out.append("{#" + rng.choice(["", "-"]) + " c " + rng.choice(["", "-"]) + "#}")
        else:
            out.append(rng.choice(["text", "a b", "\\n", "\u00e9"]))
        out.append(ws())
    return "".join(out)


STATEMENT_PRELUDE = ("{% set ns = namespace(v=1, lst=[]) %}{% set x = 'X' %}{% set y = '' %}{% set acc = '' %}"
                     "{% macro m(a, b='B') %}[{{ a }}{{ b }}]{% endmacro %}")


def mutate(rng, s):
    alphabet = "{}%#-+()[]|~.,:'\"\\ \n\t=<>!*/0123456789abcxyz_"
    for _ in range(rng.randint(1, 3)):
        if not s:
            break
        p = rng.randrange(len(s))
        op = rng.randrange(4)
        if op == 0:
            s = s[:p] + s[p + rng.randint(1, 8):]
        elif op == 1:
            s = s[:p] + rng.choice(alphabet) + s[p:]
        elif op == 2:
            s = s[:p] + rng.choice(alphabet) + s[p + 1:]
        else:
            q = rng.randrange(len(s))
            s = s[:p] + s[q:q + rng.randint(1, 20)] + s[p:]
    return s


def main():
    seed = int(os.environ.get("STRATA_CHAT_SEED", random.randrange(1 << 30)))
    print(f"seed {seed} (STRATA_CHAT_SEED={seed} reproduces)")
    rng = random.Random(seed)
    convs = conversations()
    for i in range(N_RANDOM):
        convs[f"random{i}"] = random_conversation(rng)

    templates = fixture_templates()
    for label, source, path, special in templates:
        for cname, msgs in convs.items():
            for gen in (True, False):
                tools = TOOLS if ("tool" in cname and gen) else None
                compare(f"{label} / {cname}", source, path, msgs, tools, gen, special)
        # template switches (Qwen3 enable_thinking, DeepSeek thinking, MiniMax model_identity)
        for extra in ({"enable_thinking": False}, {"enable_thinking": True}, {"thinking": True},
                      {"model_identity": "You are Strata."}, {"bos_token": "<BOS>", "eos_token": "<EOS>"}):
            compare(f"{label} / vars {extra}", source, path, convs["system_multi_turn"], None, True, special, extra)
        compare(f"{label} / tools only", source, path, convs["single_user"], TOOLS, True, special)

    for i, src in enumerate(FEATURES):
        path = os.path.join(TMP, f"feature{i}.jinja")
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(src)
        compare(f"feature {i} {src[:60]!r}", src, path, [{"role": "user", "content": "x"}], None, True, None, DATA)

    # Generated templates: expressions over many value types, statement soups (scoping, loops,
    # macros, whitespace control), and real templates with random edits (mostly syntax errors:
    # both must fail, and where jinja2 renders, strata must render the same).
    path = os.path.join(TMP, "generated.jinja")
    sources = [src for (_, src, _, _) in templates] + FEATURES
    for i in range(N_FUZZ):
        for kind in ("expression", "statements", "mutation"):
            if kind == "expression":
                src = "".join("{{ %s }}|" % random_expression(rng) for _ in range(4))
                msgs = [{"role": "user", "content": "x"}]
            elif kind == "statements":
                src = STATEMENT_PRELUDE + random_block(rng) + "|{{ x }}{{ y }}{{ i }}{{ acc }}{{ ns.v }}"
                msgs = [{"role": "user", "content": "x"}]
            else:
                src = mutate(rng, rng.choice(sources))
                msgs = rng.choice(list(convs.values()))
            with open(path, "w", encoding="utf-8", newline="") as f:
                f.write(src)
            compare(f"{kind} {i}: {src[:300]!r}", src, path, msgs, TOOLS, True, None, DATA, allow_unsupported=True)

    # mistral's tokenizer_config.json carries no chat_template: strata must say so, not render.
    ok, err = strata(os.path.join(FIX, "tokenizers", "mistral"), [{"role": "user", "content": "x"}])
    if ok or "chat_template" not in err:
        failures.append(f"mistral (no chat_template) should fail naming chat_template, got ok={ok} {err!r}")
    else:
        global passed
        passed += 1

    print(f"{passed} comparisons agree with jinja2 {jinja2.__version__} ({outcomes}), {len(failures)} differ")
    for f in failures[:40]:
        print(f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
