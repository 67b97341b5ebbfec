"""GGUF files and block dequantization against the `gguf` PyPI package (llama.cpp's own Python
library): files written by gguf.GGUFWriter are parsed by `strata gguf-info`, every block type's
tensor decoded by `strata gguf-dequant` equals gguf.quants.dequantize of the bytes gguf's reader
returns, and corrupted files give a clean error (exit 1, message), never a crash.
Random data with a fresh seed per run (printed; STRATA_GGUF_SEED reproduces)."""
import json
import os
import random
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize

BIN = os.environ["STRATA_BINARY"]
seed = int(os.environ.get("STRATA_GGUF_SEED", random.SystemRandom().randrange(1 << 30)))
print(f"seed {seed}")
rng = np.random.default_rng(seed)

# Where each K-quant block keeps its fp16 scales (so random bytes get finite, sane ones).
FP16_FIELDS = {T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208], T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0],
               T.Q5_1: [0, 2], T.Q8_0: [0]}


def random_blocks(qtype, rows, cols):
    """Raw bytes [rows, cols/block*bytes]: quantized from random weights where gguf can, else random
    bytes with valid fp16 scales written in."""
    block, size = GGML_QUANT_SIZES[qtype]
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    try:
        return quantize(w, qtype)
    except NotImplementedError:
        raw = rng.integers(0, 256, size=(rows, cols // block, size), dtype=np.uint8)
        for off in FP16_FIELDS[qtype]:
            scales = (rng.random((rows, cols // block)) * 0.1 + 0.001).astype(np.float16)
            raw[:, :, off:off + 2] = scales.view(np.uint8).reshape(rows, cols // block, 2)
        return raw.reshape(rows, cols // block * size)


def run(*args):
    return subprocess.run([BIN] + list(args), capture_output=True, text=True, errors="replace")


failures = 0


def check(cond, msg):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", msg)


with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "t.gguf")
    wr = GGUFWriter(path, "llama")
    wr.add_uint32("test.u32", 7)
    wr.add_float32("test.f32", 0.5)
    wr.add_string("test.str", "héllo")
    wr.add_array("test.arr", [1, 2, 3])
    wr.add_bool("test.bool", True)
    types = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q4_K, T.Q5_K, T.Q6_K]
    rows, cols = 3, 512
    for t in types:
        if t == T.F32:
            wr.add_tensor(f"t.{t.name}", rng.standard_normal((rows, cols)).astype(np.float32))
        elif t == T.F16:
            wr.add_tensor(f"t.{t.name}", rng.standard_normal((rows, cols)).astype(np.float16))
        else:
            data = random_blocks(t, rows, cols) if t != T.BF16 else quantize(
                rng.standard_normal((rows, cols)).astype(np.float32), T.BF16)
            wr.add_tensor(f"t.{t.name}", data, raw_shape=data.shape, raw_dtype=t)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()

    out = run("gguf-info", "--file", path)
    check(out.returncode == 0, f"gguf-info failed: {out.stderr}")
    info = json.loads(out.stdout)
    md = info["metadata"]
    check(md["test.u32"] == 7 and md["test.f32"] == 0.5 and md["test.str"] == "héllo" and md["test.bool"] is True,
          f"metadata differs: {md}")
    check(md["test.arr"]["length"] == 3, "array length")
    reader = GGUFReader(path)
    by_name = {t.name: t for t in reader.tensors}
    for t in info["tensors"]:
        rt = by_name[t["name"]]
        check(t["type"] == rt.tensor_type.name, f"{t['name']} type {t['type']} vs {rt.tensor_type.name}")
        check(t["dims"] == [int(x) for x in rt.shape], f"{t['name']} dims {t['dims']} vs {list(rt.shape)}")
        check(t["bytes"] == int(rt.n_bytes), f"{t['name']} bytes")
        f32 = os.path.join(d, "out.f32")
        o = run("gguf-dequant", "--file", path, "--tensor", t["name"], "--output", f32)
        check(o.returncode == 0, f"dequant {t['name']}: {o.stderr}")
        mine = np.fromfile(f32, dtype=np.float32)
        ref = dequantize(rt.data, rt.tensor_type).astype(np.float32).reshape(-1)
        same = mine.shape == ref.shape and np.allclose(mine, ref, rtol=1e-6, atol=1e-7)
        err = float(np.max(np.abs(mine - ref))) if mine.shape == ref.shape else None
        check(same, f"{t['name']}: dequantization differs from gguf (max abs err {err})")
        print(f"{t['name']:8s} {t['type']:5s} {mine.size} elements, max |strata - gguf| = {err}")
    check(len(info["tensors"]) == len(types), "tensor count")

    # Corruption: truncations and random byte flips in the header/metadata/tensor-info region.
    good = open(path, "rb").read()
    header_end = reader.data_offset
    bad = os.path.join(d, "bad.gguf")
    cases = [good[:n] for n in (0, 3, 4, 8, 16, 24, header_end // 2, header_end - 1)]
    for _ in range(60):
        b = bytearray(good)
        for _ in range(rng.integers(1, 4)):
            b[int(rng.integers(0, header_end))] = int(rng.integers(0, 256))
        cases.append(bytes(b))
    cases.append(good[:header_end + 10])  # tensor data cut short
    crashed = errored = 0
    for c in cases:
        open(bad, "wb").write(c)
        o = run("gguf-info", "--file", bad)
        if o.returncode < 0 or o.returncode > 1:
            crashed += 1
            print("CRASH on corrupted file:", o.returncode, o.stderr[-300:])
        elif o.returncode == 1:
            errored += 1
            check("error" in o.stderr and bad in o.stderr, f"error without the file name: {o.stderr!r}")
    check(crashed == 0, f"{crashed} corrupted files crashed strata")
    # Truncations must all be rejected (flips may land in string bytes and stay valid).
    check(errored >= 9, f"only {errored} of {len(cases)} corrupted files were rejected")
    print(f"{len(cases)} corrupted files: {errored} rejected with an error, {crashed} crashes")

if failures:
    print(f"FAILED ({failures}), seed {seed}")
    sys.exit(1)
print("ok")
