"""Our exports loaded by real PEFT and transformers, and their logits (the export issue's load check).

    python tools/reference/peft_load_check.py tests/fixtures/peft-load OUT/peft-load/torch-check.json

reads what tools/reference/peft_load_make.ts wrote (<fixtures>/<variant>/adapter and /merged,
<fixtures>/inputs.json) and the parity base models (<fixtures>/../parity/<variant>, or --parity),
and for each variant, with torch on the CPU in float32 and eager attention:
  base    AutoModelForCausalLM.from_pretrained(parity base), float32 as stored;
  peft    PeftModel.from_pretrained(that base, <variant>/adapter);
  merged  AutoModelForCausalLM.from_pretrained(<variant>/merged): once with dtype="auto" (every
          parameter must come out bfloat16, as stored) and once with dtype=float32 (the bf16
          values upcast exactly), whose float32 forward gives the logits.
Each sequence of inputs.json runs alone (positions from 0). Written next to the summary JSON:
<variant>/torch-logits.safetensors (input_ids.<i> int32, base.<i>, peft.<i>, merged.<i> float32
[len, vocab]) and the summary (versions, dtypes, this command, sha256 of every file read, results).

Any missing, unexpected or mismatched key fails the run (exit 1, after writing what it has, with
the failures in the summary): what the loaders report (loading info, warnings) and, independently,
the loaded model's state dict against the files, key for key and value for value. A key dropped
silently would make the check hollow. tests/peft-load.test.ts compares our logits with these.
"""
import argparse, contextlib, hashlib, json, logging, os, platform, re, shlex, sys, warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never ask the Hub

import peft, safetensors, torch, transformers
from peft import PeftModel, get_peft_model_state_dict
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

VARIANTS = ["llama", "llama3-tied", "mistral", "qwen2", "qwen3"]
KEY_WORDS = re.compile(r"missing|unexpected|mismatch|not initiali[sz]ed|newly initiali[sz]ed|not used", re.I)
# peft's "Unexpected keyword arguments [...] for class LoraConfig" is about config fields it does
# not know (an older peft): recorded in the summary, not a weight left behind.
CONFIG_FIELDS = re.compile(r"keyword argument", re.I)
failures, seen = [], []


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    failures.append(msg)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def rel(a, b):
    """max |a - b| / max |b|"""
    return float((a - b).abs().max() / b.abs().max())


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def watched(what):
    """Records every warning (warnings module, transformers' logger); fails on one that speaks of keys."""
    records = Records()
    logging.getLogger("transformers").addHandler(records)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        logging.getLogger("transformers").removeHandler(records)
    for m in records.messages + [str(w.message) for w in caught]:
        print(f"  {what}: warning: {m}")
        seen.append(f"{what}: {m}")
        if KEY_WORDS.search(m) and not CONFIG_FIELDS.search(m):
            fail(f"{what}: {m}")


def load_lm(path, dtype, what):
    with watched(what):
        model, info = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, attn_implementation="eager", output_loading_info=True)
    for k, v in (info if isinstance(info, dict) else vars(info)).items():
        if v and re.search("missing|unexpected|mismatch|error", k):
            fail(f"{what}: loading info {k}: {sorted(map(str, v))}")
    return model.eval()


def check_same(got, stored, what):
    """Two state dicts hold the same keys, each with the same dtype, shape and values."""
    if set(got) != set(stored):
        fail(f"{what}: keys only in the model {sorted(set(got) - set(stored))}, only in the files {sorted(set(stored) - set(got))}")
    for k in sorted(set(got) & set(stored)):
        if got[k].dtype != stored[k].dtype or not torch.equal(got[k], stored[k]):
            fail(f"{what}: {k} is {got[k].dtype} {list(got[k].shape)} in the model, {stored[k].dtype} {list(stored[k].shape)} in the files, or its values differ")


def check_weights(model, folder, what):
    """The model's state dict is the folder's safetensors (a tied lm_head is the embedding)."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    stored = {}
    for f in files:
        stored.update(load_file(os.path.join(folder, f)))
    sd = model.state_dict()
    if model.config.tie_word_embeddings:
        lm_head = sd.pop("lm_head.weight", None)
        if lm_head is not None and not torch.equal(lm_head, sd["model.embed_tokens.weight"]):
            fail(f"{what}: lm_head is not tied to the embedding")
    check_same(sd, stored, what)
    return len(stored)


@torch.no_grad()
def logits(model, sequences):
    return [model(input_ids=torch.tensor([ids])).logits[0].float().contiguous() for ids in sequences]


def check_variant(v, args, sequences, out_dir):
    base_dir, adapter_dir, merged_dir = os.path.join(args.parity, v), os.path.join(args.fixtures, v, "adapter"), os.path.join(args.fixtures, v, "merged")
    base = load_lm(base_dir, torch.float32, f"{v} base")
    check_weights(base, base_dir, f"{v} base")
    base_logits = logits(base, sequences)  # before PEFT wraps the base in place

    with watched(f"{v} peft"):
        model = PeftModel.from_pretrained(base, adapter_dir).eval()
    saved = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    check_same(get_peft_model_state_dict(model, save_embedding_layers=False), saved, f"{v} peft adapter")
    lora = model.peft_config["default"]
    if (lora.r, lora.lora_alpha, lora.use_rslora) != (8, 16, True):
        fail(f"{v} peft: config r {lora.r}, alpha {lora.lora_alpha}, rslora {lora.use_rslora}; expected 8, 16, True")
    peft_logits = logits(model, sequences)

    stored = load_lm(merged_dir, "auto", f"{v} merged (dtype auto)")
    dtypes = sorted({str(p.dtype) for p in stored.parameters()})
    if dtypes != ["torch.bfloat16"]:
        fail(f"{v} merged: dtype='auto' gives {dtypes}, expected torch.bfloat16 (as stored)")
    tensors = check_weights(stored, merged_dir, f"{v} merged (dtype auto)")
    merged = load_lm(merged_dir, torch.float32, f"{v} merged (float32)")
    check_same(merged.state_dict(), {k: t.float() for k, t in stored.state_dict().items()}, f"{v} merged float32 vs bf16 upcast")
    merged_logits = logits(merged, sequences)
    bf16_float_logits = logits(stored.float(), sequences)

    out = {}
    for i, ids in enumerate(sequences):
        out.update({f"input_ids.{i}": torch.tensor(ids, dtype=torch.int32), f"base.{i}": base_logits[i], f"peft.{i}": peft_logits[i], f"merged.{i}": merged_logits[i]})
    os.makedirs(os.path.join(out_dir, v), exist_ok=True)
    save_file(out, os.path.join(out_dir, v, "torch-logits.safetensors"), metadata={"format": "pt"})
    worst = lambda a, b: max(rel(x, y) for x, y in zip(a, b))
    result = {
        "adapter_tensors": len(saved),
        "merged_tensors": tensors,
        "base_vs_peft": worst(base_logits, peft_logits),
        "merged_vs_peft": worst(merged_logits, peft_logits),
        "merged_bf16_load_then_float_vs_float32_load": worst(bf16_float_logits, merged_logits),
    }
    print(f"{v}: {json.dumps(result)}", flush=True)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("fixtures", help="tests/fixtures/peft-load")
    ap.add_argument("out_json", help="the summary; the logits go to <its folder>/<variant>/torch-logits.safetensors")
    ap.add_argument("--parity", help="the parity base models (default: <fixtures>/../parity)")
    args = ap.parse_args()
    args.parity = args.parity or os.path.join(args.fixtures, "..", "parity")
    out_dir = os.path.dirname(os.path.abspath(args.out_json))
    torch.set_grad_enabled(False)
    inputs_path = os.path.join(args.fixtures, "inputs.json")
    with open(inputs_path) as f:
        sequences = json.load(f)["sequences"]

    hashed = {"inputs.json": sha256(inputs_path)}
    for v in VARIANTS:
        for f in ["config.json", "model.safetensors"]:
            hashed[f"parity/{v}/{f}"] = sha256(os.path.join(args.parity, v, f))
        for kind in ["adapter", "merged"]:
            for f in sorted(os.listdir(os.path.join(args.fixtures, v, kind))):
                hashed[f"{v}/{kind}/{f}"] = sha256(os.path.join(args.fixtures, v, kind, f))

    results = {v: check_variant(v, args, sequences, out_dir) for v in VARIANTS}
    summary = {
        "command": shlex.join([os.path.basename(sys.executable)] + sys.argv),
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__, "safetensors": safetensors.__version__},
        "device": "cpu",
        "attn_implementation": "eager",
        "dtype": {
            "base": "float32 as stored; computed in float32",
            "peft": "base float32 + adapter float32 (PeftModel.from_pretrained); computed in float32",
            "merged": "stored bfloat16 (dtype='auto' gives bfloat16 parameters, checked); logits from a dtype=float32 load "
                      "(the bf16 values upcast exactly, checked) computed in float32",
        },
        "sha256": hashed,
        "variants": results,
        "warnings": seen,
        "failures": failures,
        "result": "FAILED" if failures else "ok",
    }
    os.makedirs(out_dir, exist_ok=True)
    with open(args.out_json, "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    print(f"{summary['result']}: {args.out_json}")
    if failures:
        print("\n".join(["FAILURES:"] + failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
