// The embedded offline demo (public/demo/): its tokenizer loads with @huggingface/transformers, its
// model opens with our safetensors reader and matches its config, its manifest and dataset agree
// with the files, and the generator reproduces the committed bytes exactly.

import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AutoTokenizer, env, type PreTrainedTokenizer } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesSource, openSafetensors } from '../src/io/safetensors.ts';
import { makeDemo } from '../tools/demo/make-demo.ts';

const DEMO = resolve(fileURLToPath(import.meta.url), '../../public/demo');
const MODEL = join(DEMO, 'model');

interface Turn {
  from: string;
  value: string;
}
const ROLE: Record<string, string> = { system: 'system', human: 'user', gpt: 'assistant' };

const readJson = async (p: string) => JSON.parse(await readFile(p, 'utf8'));

let tok: PreTrainedTokenizer;
let config: Record<string, any>;
let rows: { conversations: Turn[] }[];

beforeAll(async () => {
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = `${DEMO}/`;
  tok = await AutoTokenizer.from_pretrained('model');
  config = await readJson(join(MODEL, 'config.json'));
  const text = await readFile(join(DEMO, 'data/sort-words.jsonl'), 'utf8');
  rows = text.trimEnd().split('\n').map((l) => JSON.parse(l));
});

const chatml = (msgs: { role: string; content: string }[], genPrompt = false) =>
  msgs.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('') + (genPrompt ? '<|im_start|>assistant\n' : '');
const toMessages = (turns: Turn[]) => turns.map((t) => ({ role: ROLE[t.from], content: t.value }));
const encode = (s: string) => tok.encode(s, { add_special_tokens: false });

describe('demo tokenizer (@huggingface/transformers)', () => {
  it('has the special tokens as single ids, matching config.json', () => {
    const specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|pad|>'];
    const ids = specials.map((s) => encode(s));
    for (const i of ids) expect(i).toHaveLength(1);
    expect(ids.flat()).toEqual([508, 509, 510, 511]);
    expect(tok.bos_token).toBe('<|endoftext|>');
    expect(tok.eos_token).toBe('<|im_end|>');
    expect(tok.pad_token).toBe('<|pad|>');
    expect([tok.bos_token_id, tok.eos_token_id, tok.pad_token_id]).toEqual([config.bos_token_id, config.eos_token_id, config.pad_token_id]);
    expect(encode('x<|im_start|>user\nhi<|im_end|>\n')).toContain(509);
    // Like Llama 3: a plain encode() prepends the BOS; the chat template itself has none.
    expect(tok.encode('hi')[0]).toBe(config.bos_token_id);
    expect(tok.encode('hi').slice(1)).toEqual(encode('hi'));
  });

  it('has ids 0..vocab_size-1, exactly (the embedding has no unused rows)', async () => {
    const json = await readJson(join(MODEL, 'tokenizer.json'));
    const ids = [...Object.values(json.model.vocab as Record<string, number>), ...json.added_tokens.map((t: { id: number }) => t.id)];
    expect(ids.sort((a, b) => a - b)).toEqual(Array.from({ length: config.vocab_size }, (_, i) => i));
    expect(json.added_tokens.every((t: { special: boolean }) => t.special)).toBe(true);
  });

  it('round-trips the text of every demo conversation, and compresses it', () => {
    let bytes = 0;
    let tokens = 0;
    for (const r of rows) {
      for (const t of r.conversations) {
        const ids = encode(t.value);
        expect(tok.decode(ids)).toBe(t.value);
      }
      const text = chatml(toMessages(r.conversations));
      const ids = encode(text);
      expect(tok.decode(ids)).toBe(text);
      expect(tok.decode(ids, { skip_special_tokens: true })).toBe(text.replace(/<\|im_(start|end)\|>/g, ''));
      bytes += new TextEncoder().encode(text).length;
      tokens += ids.length;
    }
    expect(tokens).toBeLessThan(bytes / 3); // the learned merges are in use
  });

  it('round-trips arbitrary UTF-8', () => {
    const samples = [
      'Crème brûlée, naïve café, Ångström, Straße',
      'Emoji 🤗🦙👩‍👩‍👧 and flags 🇫🇷',
      '日本語のテキスト، العربية, עברית, русский',
      '  leading and trailing spaces  ',
      'tabs\tand\nnew\r\nlines\n\n\n',
      'control \u0000\u0001\u007f chars, combining e\u0301 and zero\u200bwidth',
      "it's, we're, I'LL, 12345678, 3.14159",
      '<|im_start|> inside text <|pad|><|endoftext|>',
      '<|im_start', // almost special
    ];
    for (const s of samples) {
      const ids = encode(s);
      expect(tok.decode(ids), JSON.stringify(s)).toBe(s);
    }
  });

  it('renders a ShareGPT-mapped conversation as exact ChatML', () => {
    const row = rows.find((r) => r.conversations[0].from === 'system' && r.conversations.length > 3)!;
    expect(row).toBeDefined();
    const messages = toMessages(row.conversations);
    const rendered = tok.apply_chat_template(messages, { tokenize: false }) as string;
    expect(rendered).toBe(chatml(messages));
    expect(rendered.startsWith(`<|im_start|>system\n${row.conversations[0].value}<|im_end|>\n<|im_start|>user\n`)).toBe(true);
    const prompt = tok.apply_chat_template(messages.slice(0, 2), { tokenize: false, add_generation_prompt: true }) as string;
    expect(prompt).toBe(chatml(messages.slice(0, 2), true));
    expect(prompt.endsWith('<|im_end|>\n<|im_start|>assistant\n')).toBe(true);
    const ids = tok.apply_chat_template(messages, { tokenize: true, return_tensor: false, return_dict: false }) as number[];
    expect(ids).toEqual(encode(rendered));
  });
});

describe('demo model', () => {
  it('opens with the safetensors reader; every tensor config.json implies, bf16, transformers-initialised', async () => {
    const bytes = new Uint8Array(await readFile(join(MODEL, 'model.safetensors')));
    const st = await openSafetensors(bytesSource(bytes, 'model.safetensors'));
    expect(st.metadata.format).toBe('pt');
    const H = config.hidden_size;
    const I = config.intermediate_size;
    const V = config.vocab_size;
    const hd = config.head_dim ?? H / config.num_attention_heads;
    expect(config.architectures).toEqual(['LlamaForCausalLM']);
    expect(config.model_type).toBe('llama');
    expect(config.torch_dtype).toBe('bfloat16');
    expect(config.tie_word_embeddings).toBe(false);
    const expected = new Map<string, number[]>([
      ['model.embed_tokens.weight', [V, H]],
      ['model.norm.weight', [H]],
      ['lm_head.weight', [V, H]],
    ]);
    for (let i = 0; i < config.num_hidden_layers; i++) {
      const p = `model.layers.${i}`;
      expected.set(`${p}.self_attn.q_proj.weight`, [config.num_attention_heads * hd, H]);
      expected.set(`${p}.self_attn.k_proj.weight`, [config.num_key_value_heads * hd, H]);
      expected.set(`${p}.self_attn.v_proj.weight`, [config.num_key_value_heads * hd, H]);
      expected.set(`${p}.self_attn.o_proj.weight`, [H, config.num_attention_heads * hd]);
      expected.set(`${p}.mlp.gate_proj.weight`, [I, H]);
      expected.set(`${p}.mlp.up_proj.weight`, [I, H]);
      expected.set(`${p}.mlp.down_proj.weight`, [H, I]);
      expected.set(`${p}.input_layernorm.weight`, [H]);
      expected.set(`${p}.post_attention_layernorm.weight`, [H]);
    }
    expect(st.tensors.map((t) => t.name).sort()).toEqual([...expected.keys()].sort());
    let params = 0;
    for (const [name, shape] of expected) {
      const t = st.get(name);
      expect(t.dtype, name).toBe('BF16');
      expect(t.shape, name).toEqual(shape);
      params += t.numel;
      const v = await st.readF32(name);
      expect(v.every(Number.isFinite), name).toBe(true);
      if (name.endsWith('norm.weight')) {
        expect(v.every((x) => x === 1), name).toBe(true);
        continue;
      }
      let s = 0;
      let s2 = 0;
      for (const x of v) {
        s += x;
        s2 += x * x;
      }
      const mean = s / v.length;
      const std = Math.sqrt(s2 / v.length - mean * mean);
      expect(Math.abs(mean), name).toBeLessThan(0.002);
      expect(Math.abs(std - 0.02), `${name} std ${std}`).toBeLessThan(0.0015);
    }
    // nn.Embedding(padding_idx=pad_token_id): that row is zero.
    const emb = await st.readF32('model.embed_tokens.weight');
    const pad = config.pad_token_id;
    expect(emb.subarray(pad * H, (pad + 1) * H).every((x) => x === 0)).toBe(true);
    const manifest = await readJson(join(DEMO, 'manifest.json'));
    expect(manifest.model.params).toBe(params);
  });

  it('has a generation config consistent with config.json', async () => {
    const gen = await readJson(join(MODEL, 'generation_config.json'));
    expect(gen.eos_token_id).toBe(config.eos_token_id);
    expect(gen.bos_token_id).toBe(config.bos_token_id);
    expect(gen.pad_token_id).toBe(config.pad_token_id);
  });
});

describe('demo dataset and manifest', () => {
  it('the JSONL parses to the stated number of well-formed, correct conversations', async () => {
    const manifest = await readJson(join(DEMO, 'manifest.json'));
    const ds = manifest.datasets[0];
    expect(ds).toMatchObject({ path: 'demo/data/sort-words.jsonl', format: 'sharegpt', rows: 300 });
    expect(rows.length).toBe(ds.rows);
    let withSystem = 0;
    let twoTurn = 0;
    for (const r of rows) {
      const c = r.conversations;
      const turns = c[0].from === 'system' ? c.slice(1) : c;
      if (turns !== c) withSystem++;
      if (turns.length === 4) twoTurn++;
      expect(turns.length % 2).toBe(0);
      turns.forEach((t, i) => expect(t.from).toBe(i % 2 === 0 ? 'human' : 'gpt'));
      // The task itself: the answer is the question's words, sorted, with the same separator.
      const list = turns[0].value.slice(turns[0].value.indexOf(': ') + 2);
      const sep = list.includes(', ') ? ', ' : ' ';
      const sorted = list.split(sep).sort();
      expect(turns[1].value).toBe(sorted.join(sep));
      if (turns.length === 4) expect(turns[3].value).toBe([...sorted].reverse().join(sep));
    }
    expect(withSystem).toBeGreaterThan(30);
    expect(twoTurn).toBeGreaterThan(10);
  });

  it('manifest sizes match the files, and the whole demo is small', async () => {
    const manifest = await readJson(join(DEMO, 'manifest.json'));
    expect(manifest.model).toMatchObject({ id: 'webtune/demo-tiny-llama', name: 'Demo (offline)', path: 'demo/model' });
    let total = 0;
    for (const f of manifest.model.files) {
      const size = (await readFile(join(DEMO, '..', manifest.model.path, f.path))).length;
      expect(size, f.path).toBe(f.size);
      total += size;
    }
    expect(manifest.model.files.map((f: { path: string }) => f.path).sort()).toEqual(
      ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'],
    );
    const ds = manifest.datasets[0];
    const dsBytes = (await readFile(join(DEMO, '..', ds.path))).length;
    expect(dsBytes).toBe(ds.bytes);
    total += dsBytes;
    expect(total).toBeLessThan(1_000_000);
  });
});

describe('demo generator', () => {
  let out = '';
  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'webtune-demo-'));
  });
  afterAll(() => rm(out, { recursive: true, force: true }));

  it('reproduces the committed files byte for byte', async () => {
    await makeDemo(out);
    const list = async (dir: string): Promise<string[]> => {
      const found: string[] = [];
      for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
        if (e.isFile()) found.push(relative(dir, join(e.parentPath, e.name)));
      }
      return found.sort();
    };
    const committed = await list(DEMO);
    expect(await list(out)).toEqual(committed);
    for (const f of committed) {
      const a = await readFile(join(DEMO, f));
      const b = await readFile(join(out, f));
      expect(b.equals(a), `${f} differs from a fresh run of tools/demo/make-demo.ts`).toBe(true);
    }
  });
});
