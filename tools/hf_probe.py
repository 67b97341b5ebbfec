"""Investigation probe (device machine, has transformers): prints HF source of the rope/yarn
helpers and re-runs DeepSeek-V3 fixture prompt 1 full forward vs generate to explain a mismatch.
Not a test and not a fixture generator: it writes nothing the tests read."""
import inspect, sys, json
import torch, transformers
from safetensors.torch import load_file
print("transformers", transformers.__version__, "torch", torch.__version__)
from transformers import modeling_rope_utils as r
print(inspect.getsource(r._compute_yarn_parameters))
from transformers.models.minimax_m2 import configuration_minimax_m2 as mc
src = inspect.getsource(mc)
i = src.find("def __init__")
print(src[i:i+4000])
from transformers.models.deepseek_v3 import configuration_deepseek_v3 as dc
src = inspect.getsource(dc); i = src.find("def __init__"); print(src[i:i+5000])
d = sys.argv[1]
ref = load_file(d + "/deepseek_v3.safetensors")
model = transformers.AutoModelForCausalLM.from_pretrained(d + "/deepseek_v3", dtype=torch.bfloat16, attn_implementation="eager").float()
ids = ref["prompt_1.input_ids"].long()[None]
with torch.no_grad():
    full = model(ids).logits[0]
    print("full vs ref logits", ((full - ref["prompt_1.logits"]).norm() / ref["prompt_1.logits"].norm()).item())
    print("full last vs greedy0", ((full[-1] - ref["prompt_1.greedy_logits"][0]).norm() / full[-1].norm()).item())
    out = model.generate(ids, max_new_tokens=12, do_sample=False, output_logits=True, return_dict_in_generate=True)
    print("generate ids", out.sequences[0, ids.shape[1]:].tolist(), "ref", ref["prompt_1.greedy_ids"].tolist())
    print("gen step0 vs ref greedy0", ((out.logits[0][0] - ref["prompt_1.greedy_logits"][0]).norm() / ref["prompt_1.greedy_logits"][0].norm()).item())
    # batched with left padding, as a fixture generator might have done
    tok_pad = 0
    batch = [ref[f"prompt_{i}.input_ids"].long() for i in range(3)]
    L = max(len(b) for b in batch)
    inp = torch.full((3, L), tok_pad); mask = torch.zeros((3, L), dtype=torch.long)
    for i, b in enumerate(batch):
        inp[i, L - len(b):] = b; mask[i, L - len(b):] = 1
    out = model.generate(inp, attention_mask=mask, max_new_tokens=12, do_sample=False, output_logits=True, return_dict_in_generate=True)
    for i in range(3):
        g = torch.stack([l[i] for l in out.logits])
        print("batched prompt", i, "ids", out.sequences[i, L:].tolist(), "err vs ref", ((g - ref[f"prompt_{i}.greedy_logits"]).norm() / ref[f"prompt_{i}.greedy_logits"].norm()).item())
