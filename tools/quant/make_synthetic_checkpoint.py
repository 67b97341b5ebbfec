"""A tiny dense checkpoint with awkward shapes and values for the INT4 interop check.
Not a model: `strata quantize` only reads config.json and the tensors, so one odd-shaped linear
(rows not a multiple of 8, so zero points pack with padding) and hostile groups are enough."""
import json, struct, sys
import numpy as np

def bf16_bytes(a):
    # round-to-nearest-even f32 -> bf16, as torch does
    u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16).tobytes()

def main(out):
    rng = np.random.default_rng(7)
    tensors = {}
    w = rng.standard_normal((100, 256)).astype(np.float32) * 0.05
    w[0, :32] = 0.0                        # an all-zero group: scale falls back to bf16 eps
    w[1, :] = np.abs(w[1, :]) + 0.01       # only positive values: asymmetric zero point at -8
    w[2, :] = -np.abs(w[2, :]) - 0.01      # only negative values
    w[3, :64] = np.tile([0.5, -0.5, 0.25, 7.5], 16)  # exact grid points and ties
    w[4, :] = 1e-30                         # subnormal-sized scale
    tensors["model.layers.0.mlp.down_proj.weight"] = ((100, 256), bf16_bytes(w))
    g = rng.standard_normal((24, 128)).astype(np.float32)
    tensors["model.layers.0.mlp.up_proj.weight"] = ((24, 128), bf16_bytes(g))
    n = rng.standard_normal(128).astype(np.float32)
    tensors["model.layers.0.input_layernorm.weight"] = ((128,), bf16_bytes(n))
    header, off, blobs = {}, 0, []
    for name, (shape, b) in tensors.items():
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    import os
    os.makedirs(out, exist_ok=True)
    with open(f"{out}/model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    with open(f"{out}/config.json", "w") as f:
        json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}, f, indent=2)

if __name__ == "__main__":
    main(sys.argv[1])
