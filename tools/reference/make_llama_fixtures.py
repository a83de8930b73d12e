"""Parity fixtures for the engine, from transformers + peft (run on the GPU benchmark machine).

    python tools/reference/make_llama_fixtures.py --out tests/fixtures/parity

For each variant (llama, llama3-scaled + tied, qwen2 with q/k/v bias, qwen3 with q/k norm,
mistral) a tiny random model (hidden 64, 2 layers, GQA 4/2, vocab 256) is written as
<variant>/config.json + model.safetensors (f32), a PEFT adapter with non-zero B
(<variant>/adapter/), and <variant>/expected.safetensors + expected.json holding:
  inputs   input_ids, position_ids, segment_ids, loss_mask of two packed rows;
  logits   base and with the adapter, each document run alone (what segment-aware attention
           over a packed row must reproduce);
  loss     mean CE over the masked-in next tokens of the whole batch, and the LoRA grads;
  steps    20 AdamW steps (lr 1e-3, wd 0.01, clip 1.0, linear schedule, warmup 2) on that batch:
           the loss before each step.
All on the CPU in float32 (deterministic); TF32 plays no part.
"""
import argparse, json, os
import torch
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM
from peft import LoraConfig, get_peft_model

BASE = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
            rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, pad_token_id=0)
VARIANTS = {
    "llama": dict(model_type="llama", rope_theta=10000.0, tie_word_embeddings=False),
    "llama3-tied": dict(model_type="llama", rope_theta=500000.0, tie_word_embeddings=True,
                        rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                          high_freq_factor=4.0, original_max_position_embeddings=64)),
    "qwen2": dict(model_type="qwen2", rope_theta=1000000.0, tie_word_embeddings=True),
    "qwen3": dict(model_type="qwen3", rope_theta=1000000.0, tie_word_embeddings=True, head_dim=24),
    "mistral": dict(model_type="mistral", rope_theta=10000.0, tie_word_embeddings=False, sliding_window=None),
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ROW = 48
DOCS = [[20, 28], [13, 17, 18]]  # document lengths of the two packed rows


def batch(gen):
    ids, pos, seg, mask = [], [], [], []
    for lengths in DOCS:
        assert sum(lengths) == ROW
        for s, n in enumerate(lengths, start=1):
            ids += torch.randint(3, 256, (n,), generator=gen).tolist()
            pos += list(range(n))
            seg += [s] * n
            # the first third of each document is "prompt", not trained
            mask += [0] * (n // 3) + [1] * (n - n // 3)
    shape = (len(DOCS), ROW)
    t = lambda x, dt: torch.tensor(x, dtype=dt).reshape(shape)
    return t(ids, torch.int32), t(pos, torch.int32), t(seg, torch.int32), t(mask, torch.int32)


def documents(ids, seg):
    """(row, start, end) of each document."""
    out = []
    for r in range(ids.shape[0]):
        s = seg[r].tolist()
        start = 0
        for i in range(1, len(s) + 1):
            if i == len(s) or s[i] != s[start]:
                out.append((r, start, i)); start = i
    return out


def forward_logits(model, ids, seg):
    logits = torch.zeros(ids.shape[0], ids.shape[1], BASE["vocab_size"])
    for r, a, b in documents(ids, seg):
        x = ids[r:r + 1, a:b].long()
        logits[r, a:b] = model(input_ids=x, position_ids=torch.arange(b - a)[None]).logits[0]
    return logits


def loss_fn(logits, ids, seg, mask):
    """Next-token CE inside each document, over tokens whose *target* is trained; mean over all."""
    total, count = 0.0, 0
    for r, a, b in documents(ids, seg):
        tgt = ids[r, a + 1:b].long()
        m = mask[r, a + 1:b].bool()
        ce = torch.nn.functional.cross_entropy(logits[r, a:b - 1], tgt, reduction="none")
        total = total + ce[m].sum(); count += int(m.sum())
    return total / count


def make(variant, extra, out):
    torch.manual_seed(0)
    cfg = AutoConfig.for_model(**{**BASE, **extra})
    cfg._attn_implementation = "eager"
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32).eval()
    d = os.path.join(out, variant); os.makedirs(d, exist_ok=True)
    cfg.save_pretrained(d)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    if cfg.tie_word_embeddings: sd.pop("lm_head.weight", None)
    save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})

    gen = torch.Generator().manual_seed(1)
    ids, pos, seg, mask = batch(gen)
    with torch.no_grad():
        logits_base = forward_logits(model, ids, seg)

    lcfg = LoraConfig(r=8, lora_alpha=16, use_rslora=True, target_modules=TARGETS, lora_dropout=0.0, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lcfg)
    g = torch.Generator().manual_seed(2)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            with torch.no_grad(): p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    peft_model.save_pretrained(os.path.join(d, "adapter"))

    peft_model.train()  # dropout is 0: train() changes nothing numerically
    logits_lora = forward_logits(peft_model, ids, seg)
    loss = loss_fn(logits_lora, ids, seg, mask)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in peft_model.named_parameters() if p.requires_grad}
    peft_model.zero_grad()

    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    steps, warmup = 20, 2
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: (s + 1) / (warmup + 1) if s < warmup else max(0.0, (steps - s) / (steps - warmup)))
    losses, norms, lrs = [], [], []
    for _ in range(steps):
        l = loss_fn(forward_logits(peft_model, ids, seg), ids, seg, mask)
        l.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(params, 1.0)))
        lrs.append(sched.get_last_lr()[0])
        opt.step(); sched.step(); opt.zero_grad()
        losses.append(float(l))

    tensors = {"input_ids": ids, "position_ids": pos, "segment_ids": seg, "loss_mask": mask,
               "logits_base": logits_base.contiguous(), "logits_lora": logits_lora.detach().contiguous()}
    tensors.update({"grad." + n: g.contiguous() for n, g in grads.items()})
    save_file(tensors, os.path.join(d, "expected.safetensors"))
    json.dump({"variant": variant, "loss": float(loss), "lora": {"r": 8, "alpha": 16, "rslora": True, "targets": TARGETS},
               "adamw": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.01, "max_grad_norm": 1.0,
                         "schedule": "linear", "warmup_steps": warmup, "steps": steps},
               "losses": losses, "grad_norms": norms, "lrs": lrs,
               "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                            "peft": __import__("peft").__version__}},
              open(os.path.join(d, "expected.json"), "w"), indent=1)
    print(f"{variant}: loss {float(loss):.6f}, 20-step loss {losses[0]:.4f} -> {losses[-1]:.4f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(); ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(4)
    for v, extra in VARIANTS.items(): make(v, extra, a.out)
