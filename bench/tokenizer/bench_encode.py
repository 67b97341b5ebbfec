"""Encode throughput: Strata's tokenizer next to Hugging Face `tokenizers` (pip) on the same
machine, text and settings. Both encode the whole corpus as one text, single-threaded, without
special tokens; median of --repeat runs each; load time excluded on both sides. Also checks the
ids are identical. Usage: python3 bench/tokenizer/bench_encode.py [--binary build/strata]
[--text ../shared/fixtures/corpus/moby-dick.txt] [--repeat 5]. Needs `pip install tokenizers==0.23.3`."""
import argparse
import json
import os
import platform
import statistics
import subprocess
import time

import tokenizers
from tokenizers import Tokenizer

ap = argparse.ArgumentParser()
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
fix = os.path.join(os.path.dirname(root), "shared", "fixtures")
ap.add_argument("--binary", default=os.path.join(root, "build", "strata"))
ap.add_argument("--text", default=os.path.join(fix, "corpus", "moby-dick.txt"))
ap.add_argument("--tokenizers", default="qwen3,deepseek_v3,mistral")
ap.add_argument("--repeat", type=int, default=5)
a = ap.parse_args()

text = open(a.text, encoding="utf-8").read()
nbytes = len(text.encode("utf-8"))
print(f"text: {os.path.relpath(os.path.abspath(a.text), os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))} ({nbytes} bytes); HF tokenizers {tokenizers.__version__}; {platform.processor() or platform.machine()}, "
      f"{os.cpu_count()} cpus; median of {a.repeat}; single-threaded encode of the whole text, no special tokens")
print(f"| tokenizer | tokens | HF tokenizers MB/s | Strata MB/s | Strata / HF | same ids |")
print(f"|---|---:|---:|---:|---:|---|")
env = dict(os.environ, OMP_NUM_THREADS="1", RAYON_NUM_THREADS="1")
for name in a.tokenizers.split(","):
    d = os.path.join(fix, "tokenizers", name)
    hf = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    hf.encode(text[:10000], add_special_tokens=False)  # warm-up
    times = []
    for _ in range(a.repeat):
        t0 = time.perf_counter()
        ids = hf.encode(text, add_special_tokens=False).ids
        times.append(time.perf_counter() - t0)
    hf_mbs = nbytes / statistics.median(times) / 1e6
    runs = []
    for _ in range(a.repeat):
        out = subprocess.run([a.binary, "tokenize", "--tokenizer", d, "--file", a.text, "--time"],
                             capture_output=True, text=True, env=env, check=True)
        runs.append(json.loads(out.stdout)["mb_per_s"])
    mine = json.loads(subprocess.run([a.binary, "tokenize", "--tokenizer", d, "--file", a.text],
                                     capture_output=True, text=True, check=True).stdout)
    st_mbs = statistics.median(runs)
    print(f"| {name} | {len(ids)} | {hf_mbs:.2f} | {st_mbs:.2f} | {st_mbs / hf_mbs:.1f}x | {mine == ids} |")
