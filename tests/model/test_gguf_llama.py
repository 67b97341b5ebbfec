"""GGUF llama models against the transformers oracle: the `llama` fixture (bf16) and `llama_int4`
(compressed-tensors INT4, its INT4 linears re-encoded as Q4_0 blocks, losslessly) are written as
llama.cpp's convert_hf_to_gguf writes a Llama (blk.N.* names, q/k rows permuted for ggml's pairwise
rope, llama3 rope scaling as rope_freqs.weight) with the `gguf` package, and `strata logits` on
the GGUF must reproduce the fixture's reference logits (HF transformers) within 1e-4."""
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFWriter

BIN = os.environ["STRATA_BINARY"]
FIX = os.environ["STRATA_FIXTURES_DIR"]
DT = {"BF16": np.uint16, "F32": np.float32, "I32": np.int32, "I64": np.int64, "F16": np.float16}


def read_safetensors(path):
    d = open(path, "rb").read()
    n = struct.unpack("<Q", d[:8])[0]
    header = json.loads(d[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(d[8 + n + a:8 + n + b], dtype=DT[v["dtype"]]).reshape(v["shape"])
    return out


def permute(w, n_head):  # convert_hf_to_gguf LlamaModel.permute, on rows
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def ct_to_q4_0(packed, scale):
    """compressed-tensors int4 rows -> Q4_0 blocks [N, K/32*18]: same codes, fp16 d (must be exact)."""
    N = packed.shape[0]
    K = packed.shape[1] * 8
    u = np.zeros((N, K), dtype=np.uint8)
    words = packed.view(np.uint32)
    for i in range(8):
        u[:, i::8] = (words >> (4 * i)) & 0xF
    s32 = (scale.astype(np.uint32) << 16).view(np.float32)
    d = s32.astype(np.float16)
    assert np.array_equal(d.astype(np.float32), s32), "scale not exact in fp16"
    g = u.reshape(N, K // 32, 32)
    qs = (g[:, :, :16] | (g[:, :, 16:] << 4)).astype(np.uint8)
    blocks = np.concatenate([d.reshape(N, K // 32, 1).view(np.uint8).reshape(N, K // 32, 2), qs], axis=2)
    return blocks.reshape(N, K // 32 * 18)


def write_gguf(model_dir, path):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    t = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    H, Hkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["hidden_size"]
    hd = cfg.get("head_dim", D // H)
    rp = cfg["rope_parameters"]
    w = GGUFWriter(path, "llama")
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(D)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(H)
    w.add_head_count_kv(Hkv)
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(rp["rope_theta"])
    w.add_rope_dimension_count(hd)

    def add(name, hf, n_head=None):
        if hf + ".weight" in t:
            a = t[hf + ".weight"]
            if n_head:
                a = permute(a, n_head)
            w.add_tensor(name, np.ascontiguousarray(a), raw_shape=a.shape, raw_dtype=T.BF16)
        else:
            q = ct_to_q4_0(t[hf + ".weight_packed"], t[hf + ".weight_scale"])
            if n_head:
                q = permute(q, n_head)
            w.add_tensor(name, np.ascontiguousarray(q), raw_shape=q.shape, raw_dtype=T.Q4_0)

    add("token_embd.weight", "model.embed_tokens")
    add("output_norm.weight", "model.norm")
    add("output.weight", "lm_head")
    if rp.get("rope_type") == "llama3":  # convert_hf_to_gguf's rope factors for llama3 scaling
        freqs = 1.0 / (rp["rope_theta"] ** (np.arange(0, hd, 2, dtype=np.float32) / hd))
        factor, lo, hi = rp["factor"], rp["low_freq_factor"], rp["high_freq_factor"]
        old = rp["original_max_position_embeddings"]
        fac = []
        for f in freqs:
            wl = 2 * math.pi / f
            if wl < old / hi:
                fac.append(1)
            elif wl > old / lo:
                fac.append(factor)
            else:
                s = (old / wl - lo) / (hi - lo)
                fac.append(1 / ((1 - s) / factor + s))
        w.add_tensor("rope_freqs.weight", np.array(fac, dtype=np.float32))
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        add(f"blk.{i}.attn_norm.weight", p + "input_layernorm")
        add(f"blk.{i}.ffn_norm.weight", p + "post_attention_layernorm")
        add(f"blk.{i}.attn_q.weight", p + "self_attn.q_proj", H)
        add(f"blk.{i}.attn_k.weight", p + "self_attn.k_proj", Hkv)
        add(f"blk.{i}.attn_v.weight", p + "self_attn.v_proj")
        add(f"blk.{i}.attn_output.weight", p + "self_attn.o_proj")
        add(f"blk.{i}.ffn_gate.weight", p + "mlp.gate_proj")
        add(f"blk.{i}.ffn_up.weight", p + "mlp.up_proj")
        add(f"blk.{i}.ffn_down.weight", p + "mlp.down_proj")
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


failures = 0
with tempfile.TemporaryDirectory() as tmp:
    for fixture in ["llama", "llama_int4"]:
        gguf = os.path.join(tmp, fixture + ".gguf")
        write_gguf(os.path.join(FIX, "models", fixture), gguf)
        ref = read_safetensors(os.path.join(FIX, "reference", fixture + ".safetensors"))
        for i in range(3):
            ids = ref[f"prompt_{i}.input_ids"]
            out = os.path.join(tmp, "logits.safetensors")
            r = subprocess.run([BIN, "logits", "--model", gguf, "--input-ids", ",".join(map(str, ids)), "--output", out],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(f"FAIL {fixture}: strata logits: {r.stderr}")
                failures += 1
                continue
            got = read_safetensors(out)["logits"]
            want = ref[f"prompt_{i}.logits"]
            err = float(np.linalg.norm(got - want) / np.linalg.norm(want))
            ok = err < 1e-4
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {fixture} as GGUF, prompt {i} ({len(ids)} tokens): rel err {err:.2e}")
sys.exit(1 if failures else 0)
