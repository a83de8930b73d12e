// The Python a run bundle carries: studio_data.py (the studio's tokenization and packing, redone
// so that the GPU run trains on the very same tokens) and train.py (transformers + PEFT +
// accelerate), whose first lines hold the studio run's settings. Kept as text here because the
// bundle is made in the browser too; tests compile both with python3 and run studio_data.py
// against the studio's own tokenization.

import type { BundleRunFacts } from './run-bundle-configs.ts';

/** A Python literal for a settings line: None, True/False, numbers, strings, lists. */
export function pyLiteral(v: unknown, asFloat = false): string {
  if (v === null || v === undefined) return 'None';
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new RangeError(`${v} has no Python literal here`);
    const s = String(v);
    return asFloat && /^-?\d+$/.test(s) ? `${s}.0` : s;
  }
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map((x) => pyLiteral(x)).join(', ')}]`;
  throw new TypeError(`no Python literal for ${typeof v}`);
}

/** train.py's settings: the run's hyperparameters as the configs have them, and its own few. */
export interface TrainPySettings
  extends Pick<
    BundleRunFacts,
    | 'quantization'
    | 'loraR'
    | 'loraAlpha'
    | 'useRslora'
    | 'targetModules'
    | 'loraDropout'
    | 'learningRate'
    | 'lrScheduler'
    | 'warmupSteps'
    | 'warmupRatio'
    | 'batchSize'
    | 'gradAccum'
    | 'epochs'
    | 'maxSteps'
    | 'optimizer'
    | 'weightDecay'
    | 'maxGradNorm'
    | 'maxSeqLength'
    | 'packing'
    | 'trainOnResponsesOnly'
    | 'seed'
    | 'evalEvery'
  > {
  model: string;
  dtype: 'float32' | 'bfloat16' | 'float16';
  min8bitSize: number;
  /** Optimizer steps behind the bundled adapter; null without one. */
  adapterStep: number | null;
}

/** train.py: the settings block, then the script. */
export function trainPy(s: TrainPySettings): string {
  const line = (name: string, value: string, comment?: string): string => (comment ? `${`${name} = ${value}`.padEnd(44)}# ${comment}` : `${name} = ${value}`);
  return [
    '#!/usr/bin/env python3',
    '"""Continue a WebTune Studio LoRA run on GPUs with transformers + PEFT + accelerate.',
    '',
    '    accelerate launch --config_file accelerate_config_ddp.yaml --num_processes N train.py [--model PATH]',
    '',
    'README.md has every command. The settings below are the studio run\'s; the flags override them.',
    'Each step prints one JSON line: {"step", "loss", "lr", "grad_norm", "trained_tokens", ...}.',
    '"""',
    '',
    '# ---- The studio run ------------------------------------------------------------------------',
    line('MODEL', pyLiteral(s.model), 'Hub id; --model takes a local folder too'),
    line('QUANTIZATION', pyLiteral(s.quantization), '"nf4": 4-bit base as in the studio (QLoRA)'),
    line('DTYPE', pyLiteral(s.dtype), 'weights (and compute) of the base'),
    line('LORA_R', pyLiteral(s.loraR)),
    line('LORA_ALPHA', pyLiteral(s.loraAlpha)),
    line('USE_RSLORA', pyLiteral(s.useRslora), 'scaling alpha / sqrt(r) instead of alpha / r'),
    line('TARGET_MODULES', pyLiteral(s.targetModules)),
    line('LORA_DROPOUT', pyLiteral(s.loraDropout, true)),
    line('LEARNING_RATE', pyLiteral(s.learningRate, true)),
    line('LR_SCHEDULER', pyLiteral(s.lrScheduler), 'linear, cosine or constant, each after warmup'),
    line('WARMUP_STEPS', pyLiteral(s.warmupSteps), 'None: WARMUP_RATIO of the steps'),
    line('WARMUP_RATIO', pyLiteral(s.warmupRatio, true)),
    line('BATCH_SIZE', pyLiteral(s.batchSize), 'rows of MAX_SEQ_LENGTH tokens per micro-batch'),
    line('GRAD_ACCUM', pyLiteral(s.gradAccum), 'micro-batches per optimizer step, all GPUs together'),
    line('EPOCHS', pyLiteral(s.epochs, true)),
    line('MAX_STEPS', pyLiteral(s.maxSteps), 'when set, the run\'s length instead of EPOCHS'),
    line('OPTIMIZER', pyLiteral(s.optimizer), 'adamw_8bit: bitsandbytes when installed'),
    line('MIN_8BIT_SIZE', pyLiteral(s.min8bitSize)),
    line('WEIGHT_DECAY', pyLiteral(s.weightDecay, true)),
    line('MAX_GRAD_NORM', pyLiteral(s.maxGradNorm, true), '0: no clipping'),
    line('MAX_SEQ_LENGTH', pyLiteral(s.maxSeqLength), 'tokenization.json holds the rest'),
    line('PACKING', pyLiteral(s.packing), 'documents packed into rows, attention per document'),
    line('TRAIN_ON_RESPONSES_ONLY', pyLiteral(s.trainOnResponsesOnly)),
    line('SEED', pyLiteral(s.seed)),
    line('EVAL_EVERY', pyLiteral(s.evalEvery), 'eval loss every N steps (0: at the end only)'),
    line('ADAPTER_STEP', pyLiteral(s.adapterStep), 'steps behind adapter/ (--resume-adapter)'),
    '# ---------------------------------------------------------------------------------------------',
    '',
    TRAIN_PY_BODY,
  ].join('\n');
}

export const STUDIO_DATA_PY = String.raw`"""WebTune Studio's tokenization and packing, redone in Python so train.py trains on the same tokens.

The studio turned each conversation into token ids and a loss mask, then packed documents into
rows of max_seq_length tokens. This module repeats each step the way the studio does it:

1. Render the chat template (chat_template.jinja: the text the studio rendered) with Jinja, set up
   as transformers and @huggingface/jinja set it up (trim_blocks, lstrip_blocks), with bos_token and
   eos_token from tokenization.json.
2. Find each assistant turn's trained span (its content through the end-of-turn text) by rendering
   prefixes of the conversation.
3. Tokenize the whole text once, without special tokens added; prepend the BOS when the studio did;
   map the spans to tokens: by counting bytes for byte-level BPE tokenizers, else by tokenizing the
   pieces between span edges. A span edge inside a token trains that token.
4. Cut to max_seq_length (or drop), then pack the documents into the studio's rows (rows.json lists
   how many documents each row holds), padded with pad_id; position ids restart at each document.

train.py hashes the rows and compares with the studio's hash before training.
"""

import hashlib
import json
import os
import random
import struct
from array import array

import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

# JavaScript's String.prototype.trim whitespace (Python's str.strip differs on a few characters).
JS_WHITESPACE = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def js_trim(s):
    return s.strip(JS_WHITESPACE)


class TemplateError(Exception):
    pass


def _raise_exception(message):
    raise TemplateError(message)


class ChatTemplate:
    """The studio's chat template, rendered as @huggingface/jinja renders it."""

    def __init__(self, source, bos_token, eos_token):
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
        env.filters["trim"] = lambda value, chars=None: value.strip(chars) if chars else js_trim(value)
        env.filters["tojson"] = lambda x, indent=None: json.dumps(x, ensure_ascii=False, indent=indent)
        env.globals["raise_exception"] = _raise_exception
        self.template = env.from_string(source)
        self.bos_token = bos_token or ""
        self.eos_token = eos_token or ""

    def render(self, messages, add_generation_prompt=False):
        return self.template.render(
            messages=[{"role": m["role"], "content": m["content"]} for m in messages],
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )


def _common_prefix(a, b):
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def render_with_spans(template, messages, end_of_turn):
    """The rendered text and each assistant turn's (start, end) character span."""
    text = template.render(messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        through = text if i == len(messages) - 1 else template.render(messages[: i + 1])
        before = template.render(messages[:i], add_generation_prompt=True) if i > 0 else ""
        if not text.startswith(through):
            raise TemplateError("template not prefix-stable: rendering turn %d alone differs from the full conversation" % i)
        start = _common_prefix(before, through)
        if spans:
            start = max(start, spans[-1][1])
        eot_at = through.rfind(end_of_turn)
        if eot_at >= start:
            end = eot_at + len(end_of_turn)
            # A generation prompt that does not cover the assistant header leaves it before the content.
            content = js_trim(message["content"])
            body = through[start:eot_at].rstrip(JS_WHITESPACE)
            if body.endswith(content):
                content_start = start + len(body) - len(content)
                if js_trim(through[start:content_start]):
                    start = content_start
        else:
            end = len(through)
        spans.append((start, end))
    return text, spans


# ---------------------------------------------------------------------------------------------
# Tokens

def _byte_alphabet():
    """GPT-2's bytes_to_unicode characters: each stands for one byte."""
    chars = set()
    extra = 0
    for b in range(256):
        printable = 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b <= 0xFF
        chars.add(chr(b) if printable else chr(256 + extra))
        if not printable:
            extra += 1
    return chars


_PROBES = [
    "Hello, world!  Two  spaces,\ttab, and\nnew\n\nlines.",
    "caf\u00e9 vs cafe\u0301, \u65e5\u672c\u8a9e, emoji \U0001f642\U0001f44d\U0001f3fd, math \u2248 \u03c0 \u2014 \u201cquotes\u201d",
    "<|im_start|>assistant\n  code() { return 1; }<|im_end|>\n<|eot_id|>",
    "\u00a0non-breaking\u2028separator \u00ff \u00ae \u00ac",
]


class Tokens:
    """The tokenizer as the studio used it: encode without special tokens, and byte lengths."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.byte_lengths = self._byte_lengths()

    def encode(self, text):
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _byte_lengths(self):
        """Bytes of text each token stands for, or None when the tokenizer is not byte-level BPE."""
        vocab = self.tokenizer.get_vocab()
        added = getattr(self.tokenizer, "added_tokens_decoder", {}) or {}
        special = {t.content for t in added.values() if getattr(t, "special", False)}
        alphabet = _byte_alphabet()
        lengths = {}
        for text, token_id in vocab.items():
            ordinary = text not in special and all(c in alphabet for c in text)
            lengths[token_id] = len(text) if ordinary else len(text.encode("utf-8"))
        for probe in _PROBES:
            ids = self.encode(probe)
            if any(i not in lengths for i in ids) or sum(lengths[i] for i in ids) != len(probe.encode("utf-8")):
                return None
        return lengths


def _utf8_len(s):
    return len(s.encode("utf-8", "surrogatepass"))


def align_spans(tokens, text, spans):
    """Token ids of the text and the token span of each character span."""
    whole = tokens.encode(text)
    cuts = sorted({c for span in spans for c in span if 0 < c < len(text)})
    start_at, end_at = {}, {}
    lengths = tokens.byte_lengths
    if lengths is not None and all(i in lengths for i in whole):
        k = 0  # tokens wholly before the cut
        token_end = 0  # byte offset where token k-1 ends
        nbytes = 0
        prev = 0
        for c in cuts:
            nbytes += _utf8_len(text[prev:c])
            prev = c
            while k < len(whole) and token_end + lengths[whole[k]] <= nbytes:
                token_end += lengths[whole[k]]
                k += 1
            start_at[c] = k
            end_at[c] = k if token_end == nbytes else min(k + 1, len(whole))
    else:
        # Pieces between the cuts tokenize to exactly the whole's tokens: cuts are token edges.
        token_at = {}
        pos = count = 0
        same = True
        for cut in cuts + [len(text)]:
            piece = tokens.encode(text[pos:cut])
            if whole[count : count + len(piece)] != piece:
                same = False
                break
            count += len(piece)
            token_at[cut] = count
            pos = cut
        if same and count == len(whole):
            for c in cuts:
                start_at[c] = end_at[c] = token_at[c]
        else:
            # Locate each cut by tokenizing the text before it; a cut inside a token trains it.
            for c in cuts:
                prefix = tokens.encode(text[:c])
                k = _common_prefix(prefix, whole)
                start_at[c] = k
                end_at[c] = k if k == len(prefix) else min(k + 1, len(whole))

    def edge(c, table):
        return 0 if c <= 0 else len(whole) if c >= len(text) else table[c]

    return whole, [(edge(s, start_at), edge(e, end_at)) for s, e in spans]


def tokenize_example(example, tokens, template, settings):
    """(ids, mask) of one JSONL record, or (None, reason) when the studio would skip it."""
    bos_id = settings["bos_id"]
    if "text" in example:
        ids = tokens.encode(example["text"])
        if settings["adds_bos_on_encode"] and bos_id is not None and (not ids or ids[0] != bos_id):
            ids.insert(0, bos_id)
        if settings.get("append_eos_to_text", True) and settings["eos_id"] is not None:
            ids.append(settings["eos_id"])
        mask = [1] * len(ids)
    else:
        try:
            text, spans = render_with_spans(template, example["messages"], settings["end_of_turn"])
        except Exception as e:  # the studio counts a template error as a skipped record
            return None, "template error: %s" % e
        ids, token_spans = align_spans(tokens, text, spans)
        mask = [0] * len(ids)
        if settings["train_on_responses_only"]:
            for s, e in token_spans:
                mask[s:e] = [1] * (e - s)
        else:
            mask = [1] * len(ids)
        if not settings["template_adds_bos"] and settings["adds_bos_on_encode"] and bos_id is not None and (not ids or ids[0] != bos_id):
            ids.insert(0, bos_id)
            mask.insert(0, 0)
    if not ids:
        return None, "empty after tokenization"
    mask[0] = 0  # nothing inside the document precedes its first token
    limit = settings["max_seq_length"]
    if len(ids) > limit:
        if settings["overflow"] == "drop":
            return None, "too long"
        ids, mask = ids[:limit], mask[:limit]
    if sum(mask) == 0:
        return None, "no trained tokens"
    return (ids, mask), None


# ---------------------------------------------------------------------------------------------
# Rows

def _row(documents, seq_length, pad_id):
    """One packed row: ids (int32), the loss mask (bytes) and document numbers (0: padding)."""
    ids = array("i", [pad_id] * seq_length)
    mask = bytearray(seq_length)
    segments = array("i", bytes(4 * seq_length))
    at = 0
    for k, (doc_ids, doc_mask) in enumerate(documents):
        n = len(doc_ids)
        ids[at : at + n] = array("i", doc_ids)
        mask[at : at + n] = bytes(doc_mask)
        mask[at] = 0  # a document's first token is never predicted from the one before
        segments[at : at + n] = array("i", [k + 1] * n)
        at += n
    return {"input_ids": ids, "labels_mask": mask, "segment_ids": segments}


def position_ids(segments):
    """Position inside each token's document, from 0 at every document start (0 on padding)."""
    out, p = [], 0
    for i, s in enumerate(segments):
        p = p + 1 if i > 0 and s != 0 and s == segments[i - 1] else 0
        out.append(p)
    return out


def pack_as_studio(documents, docs_per_row, seq_length, pad_id):
    """The studio's rows: row k holds the next docs_per_row[k] documents."""
    rows, at = [], 0
    for n in docs_per_row:
        rows.append(_row(documents[at : at + n], seq_length, pad_id))
        at += n
    return rows


def pack_first_fit(documents, seq_length, pad_id, packing, seed):
    """Rows for data the studio did not pack: a seeded shuffle, then first-fit (or one per row)."""
    order = list(range(len(documents)))
    random.Random(seed).shuffle(order)
    if not packing:
        return [_row([documents[i]], seq_length, pad_id) for i in order]
    open_rows = []  # [used tokens, documents]
    for i in order:
        n = len(documents[i][0])
        row = next((r for r in open_rows if r[0] + n <= seq_length), None)
        if row is None:
            row = [0, []]
            open_rows.append(row)
        row[0] += n
        row[1].append(documents[i])
    return [_row(r[1], seq_length, pad_id) for r in open_rows]


def rows_sha256(rows):
    """The studio's hash of the rows: SHA-256 over each row's SHA-256 (int32 LE ids, then mask bytes)."""
    outer = hashlib.sha256()
    for r in rows:
        inner = hashlib.sha256(struct.pack("<%di" % len(r["input_ids"]), *r["input_ids"]) + bytes(r["labels_mask"]))
        outer.update(inner.digest())
    return outer.hexdigest()


def first_difference(rows, studio_rows):
    """Where the rows differ from the studio's first rows, as a sentence."""
    for k, (mine, theirs) in enumerate(zip(rows, studio_rows)):
        for field in ("input_ids", "labels_mask"):
            a, b = mine[field], theirs[field]
            for i, (x, y) in enumerate(zip(a, b)):
                if x != y:
                    return "row %d, token %d: %s is %d here and %d in the studio" % (k, i, field, x, y)
    return "the first %d rows agree; a later row differs" % len(studio_rows)


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_rows(data_dir, split, tokenizer, settings, seed):
    """The rows of data/{split}.jsonl and a report: whether they are the studio's rows."""
    path = os.path.join(data_dir, split + ".jsonl")
    studio = settings.get("rows", {}).get(split)
    template = ChatTemplate(settings["chat_template"], settings["bos_token"], settings["eos_token"])
    tokens = Tokens(tokenizer)
    documents, skipped = [], {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            doc, reason = tokenize_example(json.loads(line), tokens, template, settings)
            if doc is None:
                skipped[reason.split(":")[0]] = skipped.get(reason.split(":")[0], 0) + 1
            else:
                documents.append(doc)
    seq_length, pad_id = settings["max_seq_length"], settings["pad_id"]
    report = {"split": split, "documents": len(documents), "skipped": skipped, "byte_level": tokens.byte_lengths is not None}
    if settings.get("changed"):
        report["changed_settings"] = settings["changed"]
    unchanged = studio is not None and studio["file_sha256"] == file_sha256(path)
    if unchanged and not skipped and sum(studio["docs_per_row"]) == len(documents):
        rows = pack_as_studio(documents, studio["docs_per_row"], seq_length, pad_id)
        report["packing"] = "studio"
        report["same_tokens"] = rows_sha256(rows) == studio["rows_sha256"]
        if not report["same_tokens"]:
            report["first_difference"] = first_difference(rows, studio.get("first_rows", []))
    else:
        rows = pack_first_fit(documents, seq_length, pad_id, settings["packing"], seed)
        report["packing"] = "first-fit" if settings["packing"] else "one per row"
        report["same_tokens"] = None if not unchanged else False
        if unchanged:
            report["first_difference"] = "%d documents tokenized here, the studio packed %d" % (len(documents), sum(studio["docs_per_row"]))
    report["rows"] = len(rows)
    return rows, report


def load_settings(bundle_dir, overrides=None):
    """tokenization.json, the template text and the studio's rows (data/rows.json). Overrides that
    change the tokens (max_seq_length, packing, ...) leave the studio's rows out."""
    with open(os.path.join(bundle_dir, "tokenization.json"), encoding="utf-8") as f:
        settings = json.load(f)
    with open(os.path.join(bundle_dir, settings["chat_template_file"]), encoding="utf-8", newline="") as f:
        settings["chat_template"] = f.read()
    rows_path = os.path.join(bundle_dir, "data", "rows.json")
    changed = [k for k, v in (overrides or {}).items() if settings.get(k) != v]
    settings.update(overrides or {})
    if os.path.exists(rows_path) and not changed:
        with open(rows_path, encoding="utf-8") as f:
            settings["rows"] = json.load(f)
    settings["changed"] = changed
    return settings
`;

const TRAIN_PY_BODY = String.raw`import argparse
import contextlib
import copy
import json
import math
import os
import re
import sys
import time
import warnings

import torch
import torch.nn.functional as F
import transformers
from accelerate import Accelerator
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, get_scheduler

import studio_data

HERE = os.path.dirname(os.path.abspath(__file__))
# The studio's schedule names -> transformers' (the studio's constant schedule warms up too).
SCHEDULERS = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


def parse_args():
    p = argparse.ArgumentParser(description="Continue a WebTune Studio LoRA run with transformers + PEFT + accelerate.")
    p.add_argument("--model", default=MODEL, help="Hub id or local folder of the base model (default: %(default)s)")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the bundle's tokenizer/, else the model's)")
    p.add_argument("--data", default=os.path.join(HERE, "data"), help="folder with train.jsonl [+ validation.jsonl]")
    p.add_argument("--output-dir", default=os.path.join(HERE, "output"), help="where the trained adapter is saved")
    p.add_argument("--resume-adapter", nargs="?", const=os.path.join(HERE, "adapter"), default=None,
                   help="start from this PEFT adapter (given alone: the studio's, adapter/)")
    p.add_argument("--start-step", type=int, default=None,
                   help="steps already done: rows and schedule continue from there (default: ADAPTER_STEP when resuming, else 0)")
    p.add_argument("--max-steps", type=int, default=MAX_STEPS, help="optimizer steps of the whole run (default: from --epochs)")
    p.add_argument("--epochs", type=float, default=EPOCHS)
    p.add_argument("--lr", type=float, default=LEARNING_RATE)
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="rows per micro-batch")
    p.add_argument("--grad-accum", type=int, default=GRAD_ACCUM, help="micro-batches per optimizer step, all GPUs together")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default=DTYPE, help="dtype of the base weights and compute")
    p.add_argument("--quantization", choices=["nf4", "none"], default=QUANTIZATION,
                   help="nf4: 4-bit base with bitsandbytes (QLoRA, as the studio); none: --dtype weights")
    p.add_argument("--attention", choices=["sdpa", "eager", "flash_attention_2"], default="sdpa",
                   help="sdpa/eager get a block-diagonal mask per packed row; flash_attention_2 reads the restarting position ids")
    p.add_argument("--no-gradient-checkpointing", action="store_true")
    p.add_argument("--allow-token-mismatch", action="store_true", help="train even when the tokens differ from the studio's")
    p.add_argument("--log-file", default=None, help="also append each step's JSON line to this file")
    return p.parse_args()


def load_model(args, accelerator, fsdp):
    dtype = getattr(torch, args.dtype)
    kwargs = {"attn_implementation": args.attention}
    version = tuple(int(x) for x in transformers.__version__.split(".")[:2])
    kwargs["dtype" if version >= (4, 56) else "torch_dtype"] = dtype  # renamed in 4.56
    if args.quantization == "nf4":
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError:
            sys.exit("--quantization nf4 needs bitsandbytes (pip install bitsandbytes); or run with --quantization none.")
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype,
            bnb_4bit_quant_storage=dtype if fsdp else torch.uint8)
    if not fsdp:
        kwargs["device_map"] = {"": accelerator.device}
    model = AutoModelForCausalLM.from_pretrained(args.model, **kwargs)
    model.config.use_cache = False
    checkpointing = not args.no_gradient_checkpointing
    if args.quantization == "nf4":
        from peft import prepare_model_for_kbit_training
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    elif checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    torch.manual_seed(args.seed)  # LoRA A's init; B starts at zero, so step 1 is the base model's loss
    if args.resume_adapter:
        return PeftModel.from_pretrained(model, args.resume_adapter, is_trainable=True)
    return get_peft_model(model, LoraConfig(
        r=LORA_R, lora_alpha=LORA_ALPHA, use_rslora=USE_RSLORA, target_modules=TARGET_MODULES,
        lora_dropout=LORA_DROPOUT, bias="none", task_type="CAUSAL_LM"))


def make_optimizer(params, args, say):
    if OPTIMIZER == "adamw_8bit":
        try:
            import bitsandbytes as bnb
            return bnb.optim.AdamW8bit(params, lr=args.lr, weight_decay=WEIGHT_DECAY, min_8bit_size=MIN_8BIT_SIZE)
        except ImportError:
            say({"event": "note", "message": "bitsandbytes is not installed: 32-bit AdamW instead of 8-bit"})
    return torch.optim.AdamW(params, lr=args.lr, weight_decay=WEIGHT_DECAY)


def studio_steps(rows, batch_size, grad_accum, total_steps):
    """The rows of each optimizer step, taken as the studio's loop takes them: grad_accum
    micro-batches of up to batch_size consecutive rows, epoch after epoch (a step can run on
    across the end of an epoch)."""
    batch = min(batch_size, rows)
    cursor = 0
    for _ in range(total_steps):
        step = []
        for _ in range(grad_accum):
            if cursor >= rows:
                cursor = 0
            count = min(batch, rows - cursor)
            step.extend(range(cursor, cursor + count))
            cursor += count
        yield step


def shares(indices, world, batch_size):
    """Each GPU's micro-batches of the rows: every GPU runs the same number of them (an empty one
    runs a zero-weight pass), so gradient syncs line up."""
    parts = [indices[r::world] for r in range(world)]
    count = max(1, max(math.ceil(len(p) / batch_size) for p in parts))
    return [[p[j * batch_size : (j + 1) * batch_size] for j in range(count)] for p in parts]


def trained_tokens(row):
    """Tokens whose prediction counts: the next token is in the same document and trained."""
    seg, mask = row["segment_ids"], row["labels_mask"]
    return sum(1 for i in range(len(seg) - 1) if seg[i] != 0 and seg[i + 1] == seg[i] and mask[i + 1])


# transformers before 4.53 takes a custom 4D mask only as a float bias with max 0; later versions
# pass it to SDPA as it is, where a boolean mask works in any compute dtype.
BOOL_SDPA_MASK = tuple(int(x) for x in transformers.__version__.split(".")[:2]) >= (4, 53)


def to_batch(rows, indices, device, dtype, attention):
    ids = torch.tensor([list(rows[i]["input_ids"]) for i in indices], device=device)
    seg = torch.tensor([list(rows[i]["segment_ids"]) for i in indices], device=device)
    pos = torch.tensor([studio_data.position_ids(rows[i]["segment_ids"]) for i in indices], device=device)
    mask = torch.tensor([list(rows[i]["labels_mask"]) for i in indices], device=device)
    weight = ((seg[:, :-1] != 0) & (seg[:, 1:] == seg[:, :-1]) & (mask[:, 1:] == 1)).float()
    batch = {"input_ids": ids, "position_ids": pos}
    if attention != "flash_attention_2":
        # Each token sees the earlier tokens of its own document only; padding sees itself.
        n = ids.shape[1]
        causal = torch.ones(n, n, dtype=torch.bool, device=device).tril()
        allowed = (seg[:, :, None] == seg[:, None, :]) & causal & (seg[:, :, None] != 0)
        allowed |= torch.eye(n, dtype=torch.bool, device=device)
        if attention == "sdpa" and BOOL_SDPA_MASK:
            batch["attention_mask"] = allowed[:, None]
        else:
            bias = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)
            batch["attention_mask"] = bias[:, None]
    return batch, ids[:, 1:], weight


def loss_sum(model, batch, targets, weight):
    """Sum of the cross-entropy over the trained tokens, in float32, a row at a time."""
    logits = model(**batch).logits
    total = 0.0
    for r in range(logits.shape[0]):
        ce = F.cross_entropy(logits[r, :-1].float(), targets[r], reduction="none")
        total = total + (ce * weight[r]).sum()
    return total


def check_packed_attention(model, rows, device, dtype, attention):
    """The largest relative change in a packed document's logits when run alone (None: no row
    holds two documents). Near 0 when documents do not see each other."""
    row = next((r for r in rows if max(r["segment_ids"]) >= 2), None)
    if row is None:
        return None
    seg = list(row["segment_ids"])
    start, m, n = seg.index(2), seg.count(2), len(seg)
    alone = {"input_ids": list(row["input_ids"][start : start + m]) + [0] * (n - m),
             "segment_ids": [1] * m + [0] * (n - m), "labels_mask": bytes(n)}
    model.eval()
    with torch.no_grad():
        b1, _, _ = to_batch([row], [0], device, dtype, attention)
        b2, _, _ = to_batch([alone], [0], device, dtype, attention)
        packed = model(**b1).logits[0, start : start + m].float()
        single = model(**b2).logits[0, :m].float()
    model.train()
    return ((packed - single).abs().max() / single.abs().max().clamp_min(1e-6)).item()


def evaluate(model, rows, args, accelerator, dtype):
    """The mean loss over the trained tokens of the validation rows."""
    model.eval()
    total = torch.zeros((), device=accelerator.device)
    count = sum(trained_tokens(r) for r in rows)
    with torch.no_grad():
        for indices in shares(list(range(len(rows))), accelerator.num_processes, args.batch_size)[accelerator.process_index]:
            if indices:
                batch, targets, weight = to_batch(rows, indices, accelerator.device, dtype, args.attention)
                total += loss_sum(model, batch, targets, weight)
            else:  # keep the GPUs' forward passes in step
                batch, targets, weight = to_batch(rows, [0], accelerator.device, dtype, args.attention)
                model(**batch)
    model.train()
    return (accelerator.reduce(total, reduction="sum") / max(count, 1)).item()


def save_adapter(model, accelerator, fsdp, output_dir):
    """The LoRA weights as a PEFT adapter (adapter_model.safetensors and adapter_config.json); returns
    the number of tensors saved. With FSDP they are gathered onto rank 0 first (its full state dict of
    a PEFT model trips over the frozen embeddings) and the files written here: PEFT picks an adapter's
    tensors by its modules' names, which FSDP's wrappers change (save_pretrained with the gathered
    state saved 0 tensors under PEFT 0.21)."""
    peft_model = accelerator.unwrap_model(model)
    if not fsdp:
        if accelerator.is_main_process:
            peft_model.save_pretrained(output_dir)
        return sum(1 for _, p in peft_model.named_parameters() if p.requires_grad)
    from safetensors.torch import save_file
    from torch.distributed.fsdp import FullyShardedDataParallel as FSDP
    # Whole weights to rank 0's CPU memory (on one GPU nothing is sharded, nor can be offloaded).
    with FSDP.summon_full_params(model, writeback=False, rank0_only=True, offload_to_cpu=accelerator.num_processes > 1):
        state = {name.replace("_fsdp_wrapped_module.", ""): p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    if accelerator.is_main_process:
        # PEFT's keys: the adapter's name dropped (q_proj.lora_A.default.weight -> q_proj.lora_A.weight).
        adapter = peft_model.active_adapter
        weights = {re.sub(r"\.%s(?=\.weight$)" % re.escape(adapter), "", k): v.contiguous() for k, v in state.items()}
        os.makedirs(output_dir, exist_ok=True)
        save_file(weights, os.path.join(output_dir, "adapter_model.safetensors"), metadata={"format": "pt"})
        config = copy.deepcopy(peft_model.peft_config[adapter])
        config.inference_mode = True  # as save_pretrained writes it
        config.save_pretrained(output_dir)
    return len(state)


def main():
    args = parse_args()
    accelerator = Accelerator()
    rank, world = accelerator.process_index, accelerator.num_processes
    fsdp = accelerator.distributed_type.name == "FSDP"
    log = open(args.log_file, "a") if args.log_file and accelerator.is_main_process else None

    def say(record):
        if accelerator.is_main_process:
            print(json.dumps(record), flush=True)
            if log and "step" in record:
                log.write(json.dumps(record) + "\n")
                log.flush()

    bundled_tokenizer = os.path.join(HERE, "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or (bundled_tokenizer if os.path.isdir(bundled_tokenizer) else args.model))
    settings = studio_data.load_settings(HERE, {"max_seq_length": MAX_SEQ_LENGTH, "packing": PACKING,
                                                 "train_on_responses_only": TRAIN_ON_RESPONSES_ONLY})
    rows, report = studio_data.load_rows(args.data, "train", tokenizer, settings, args.seed)
    say({"event": "data", **report})
    if report["same_tokens"] is False and not args.allow_token_mismatch:
        sys.exit("The tokens differ from the studio's (%s). Tokenize with the bundle's tokenizer/ and "
                 "chat_template.jinja, or pass --allow-token-mismatch." % report.get("first_difference"))
    validation = None
    if os.path.exists(os.path.join(args.data, "validation.jsonl")):
        validation, vreport = studio_data.load_rows(args.data, "validation", tokenizer, settings, args.seed)
        say({"event": "data", **vreport})

    model = load_model(args, accelerator, fsdp)
    # The dtype activations run in: the weights', or the mixed precision accelerate was told.
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(accelerator.mixed_precision, getattr(torch, args.dtype))
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], args, say)
    steps_per_epoch = math.ceil(len(rows) / (args.batch_size * args.grad_accum))
    total = args.max_steps if args.max_steps is not None else math.ceil(steps_per_epoch * args.epochs)
    warmup = WARMUP_STEPS if WARMUP_STEPS is not None else math.ceil(total * (WARMUP_RATIO or 0))
    scheduler = get_scheduler(SCHEDULERS[LR_SCHEDULER], optimizer, num_warmup_steps=warmup, num_training_steps=total)
    start = args.start_step if args.start_step is not None else (ADAPTER_STEP or 0) if args.resume_adapter else 0
    with warnings.catch_warnings():  # move the schedule on to where the run stands
        warnings.simplefilter("ignore")
        for _ in range(start):
            scheduler.step()
    if fsdp:  # LoRA layers in FSDP units of their own, as transformers' Trainer does for PEFT models
        from peft.utils.other import fsdp_auto_wrap_policy
        accelerator.state.fsdp_plugin.auto_wrap_policy = fsdp_auto_wrap_policy(model)
    model, optimizer = accelerator.prepare(model, optimizer)

    if PACKING and args.attention != "flash_attention_2":
        err = check_packed_attention(model, rows, accelerator.device, dtype, args.attention)
        say({"event": "packed_attention_check", "max_rel_diff": err})
        if err is not None and err > (1e-3 if dtype == torch.float32 else 5e-2):
            sys.exit("Packed documents see each other with this transformers version's attention mask handling: "
                     "use --attention flash_attention_2.")
    say({"event": "start", "model": args.model, "world_size": world, "fsdp": fsdp, "dtype": args.dtype,
         "quantization": args.quantization, "attention": args.attention, "rows": len(rows), "total_steps": total,
         "start_step": start, "transformers": transformers.__version__, "torch": torch.__version__})

    model.train()
    max_norm = MAX_GRAD_NORM if MAX_GRAD_NORM > 0 else float("inf")
    weights = {}
    started = time.time()
    for step, step_rows in enumerate(studio_steps(len(rows), args.batch_size, args.grad_accum, total)):
        if step < start:
            continue
        for i in step_rows:
            if i not in weights:
                weights[i] = trained_tokens(rows[i])
        trained = sum(weights[i] for i in step_rows)
        mine = shares(step_rows, world, args.batch_size)[rank]
        local = torch.zeros((), device=accelerator.device)
        for j, indices in enumerate(mine):
            idle = not indices
            sync = contextlib.nullcontext() if j == len(mine) - 1 or fsdp else accelerator.no_sync(model)
            with sync:
                batch, targets, weight = to_batch(rows, indices or step_rows[:1], accelerator.device, dtype, args.attention)
                s = loss_sum(model, batch, targets, weight)
                # The loss is the mean over the step's trained tokens on all GPUs; DDP and FSDP
                # average the GPUs' gradients, hence * world.
                accelerator.backward(s * (0.0 if idle else world / max(trained, 1)))
                if not idle:
                    local += s.detach()
        loss = (accelerator.reduce(local, reduction="sum") / max(trained, 1)).item()
        grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), max_norm))
        lr = scheduler.get_last_lr()[0]
        skipped = trained == 0 or not math.isfinite(grad_norm) or not math.isfinite(loss)
        if not skipped:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        record = {"step": step + 1, "loss": loss, "lr": lr, "grad_norm": grad_norm, "trained_tokens": trained,
                  "skipped": skipped, "seconds": round(time.time() - started, 3)}
        if validation and ((EVAL_EVERY and (step + 1) % EVAL_EVERY == 0) or step + 1 == total):
            record["eval_loss"] = evaluate(model, validation, args, accelerator, dtype)
        say(record)

    saved = save_adapter(model, accelerator, fsdp, args.output_dir)
    say({"event": "saved", "adapter": args.output_dir, "tensors": saved})
    accelerator.wait_for_everyone()
    if log:
        log.close()
    accelerator.end_training()


if __name__ == "__main__":
    main()
`;
