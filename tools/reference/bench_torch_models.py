"""PyTorch's side of `npm run bench -- --only model`: the same Llama shapes with random bf16 weights,
prefill (one forward of SEQ tokens), greedy decode, and PEFT LoRA training (r=16, alpha 16, rsLoRA,
all seven targets, gradient checkpointing, batch 1, seq SEQ); tokens/s and peak memory.

    python tools/reference/bench_torch_models.py --configs DIR --json out.json [--shapes 1b,8b] [--seq 2048]

DIR holds meta-llama--Llama-3.2-1B.json and meta-llama--Llama-3.1-8B.json (tests/fixtures/configs).
"""
import argparse, json, os, statistics, time
import torch
from transformers import AutoConfig, AutoModelForCausalLM
from peft import LoraConfig, get_peft_model

FILES = {"1b": "meta-llama--Llama-3.2-1B.json", "8b": "meta-llama--Llama-3.1-8B.json"}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

def timed(fn, repeats):
    times = []
    for i in range(-1, repeats):
        torch.cuda.synchronize(); t0 = time.perf_counter(); fn(); torch.cuda.synchronize()
        if i >= 0: times.append(time.perf_counter() - t0)
    return statistics.median(times)

def model_for(path):
    cfg = AutoConfig.from_pretrained(path) if os.path.isdir(path) else AutoConfig.for_model(**json.load(open(path)))
    torch.manual_seed(0)
    with torch.device("cuda"):
        m = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
    return m.eval(), cfg

def bench(shape, configs, seq, steps, new_tokens):
    model, cfg = model_for(os.path.join(configs, FILES[shape]))
    ids = torch.randint(0, cfg.vocab_size, (1, seq), device="cuda")
    with torch.no_grad():
        prefill = timed(lambda: model(ids, use_cache=True), 3)
        prompt = ids[:, :16]
        gen = lambda: model.generate(prompt, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
        decode = timed(gen, 2)
        first = timed(lambda: model.generate(prompt, max_new_tokens=1, do_sample=False, pad_token_id=0), 2)
    decode_tps = (new_tokens - 1) / max(1e-9, decode - first)

    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    lcfg = LoraConfig(r=16, lora_alpha=16, use_rslora=True, target_modules=TARGETS, lora_dropout=0.0, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lcfg)
    peft_model.train()
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-4)
    torch.cuda.reset_peak_memory_stats()
    def step():
        out = peft_model(input_ids=ids, labels=ids)
        out.loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    train = timed(step, steps)
    peak = torch.cuda.max_memory_allocated()
    r = {"op": "model", "shape": shape, "seq": seq, "prefill_tokens_per_s": seq / prefill, "decode_tokens_per_s": decode_tps,
         "train_step_s": train, "train_tokens_per_s": seq / train, "train_peak_bytes": peak, "dtype": "bfloat16"}
    print(f"torch {shape}: prefill {r['prefill_tokens_per_s']:.0f} tok/s, decode {decode_tps:.1f} tok/s, "
          f"PEFT train {r['train_tokens_per_s']:.0f} tok/s, peak {peak / 2**30:.2f} GiB")
    del peft_model, model, opt; torch.cuda.empty_cache()
    return r

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--configs", required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--shapes", default="1b,8b")
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--new-tokens", type=int, default=64)
    a = p.parse_args()
    results = [bench(s, a.configs, a.seq, a.steps, a.new_tokens) for s in a.shapes.split(",")]
    json.dump({"torch": torch.__version__, "transformers": __import__("transformers").__version__, "peft": __import__("peft").__version__,
               "device": torch.cuda.get_device_name(), "results": results}, open(a.json, "w"), indent=2)
