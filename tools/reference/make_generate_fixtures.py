"""Greedy generation fixtures: transformers' greedy `generate` on each parity model (run on the GPU
benchmark machine, after make_llama_fixtures.py).

    python tools/reference/make_generate_fixtures.py --dir tests/fixtures/parity

For each <variant>/ (config.json + model.safetensors, adapter/): 32 new tokens after a fixed
prompt, greedy (do_sample=False), with the KV cache, for the base model and with the PEFT adapter,
written to <variant>/generate.json. On the CPU in float32, as the other parity fixtures.
"""
import argparse, json, os
import torch
from transformers import AutoModelForCausalLM
from peft import PeftModel

PROMPT = [1, 17, 93, 200, 45, 45, 12, 250, 3, 77, 128, 9]
NEW = 32

def greedy(model, eos):
    ids = torch.tensor([PROMPT])
    out = model.generate(ids, max_new_tokens=NEW, do_sample=False, eos_token_id=eos, pad_token_id=0, use_cache=True)
    return out[0, len(PROMPT):].tolist()

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    a = p.parse_args()
    torch.use_deterministic_algorithms(True)
    for variant in sorted(os.listdir(a.dir)):
        d = os.path.join(a.dir, variant)
        if not os.path.isfile(os.path.join(d, "config.json")): continue
        model = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager").eval()
        eos = model.config.eos_token_id
        with torch.no_grad():
            base = greedy(model, eos)
            lora = greedy(PeftModel.from_pretrained(model, os.path.join(d, "adapter")).eval(), eos)
        json.dump({"prompt": PROMPT, "max_new_tokens": NEW, "eos_token_id": eos, "base": base, "lora": lora,
                   "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                                "peft": __import__("peft").__version__}},
                  open(os.path.join(d, "generate.json"), "w"), indent=1)
        print(variant, "base", base[:8], "... lora", lora[:8], "...")
