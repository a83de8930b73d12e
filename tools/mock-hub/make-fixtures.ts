// Writes the tiny Hub fixture repos under tests/fixtures/hub (models/, datasets/).
// Run: npx tsx tools/mock-hub/make-fixtures.ts   (deterministic: same bytes every run)
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parquetWriteBuffer } from 'hyparquet-writer';

const ROOT = fileURLToPath(new URL('../../tests/fixtures/hub/', import.meta.url));

function write(rel: string, data: string | Uint8Array): void {
  const abs = join(ROOT, rel);
  mkdirSync(dirname(abs), { recursive: true });
  writeFileSync(abs, data);
}
const json = (v: unknown): string => JSON.stringify(v, null, 2) + '\n';

// No .gitattributes in the fixture repos: git would apply their LFS rules to this project's own files.

// ---- tiny Llama: hidden 8, 1 layer, 2 heads (1 KV head), vocab 32, BF16 ----

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function toBf16(x: number): number {
  const f = new Float32Array([x]);
  const bits = new Uint32Array(f.buffer)[0];
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff; // round to nearest even
}

type Tensor = { name: string; shape: number[]; values: number[] };

function llamaTensors(seed: number): Tensor[] {
  const rnd = mulberry32(seed);
  const h = 8, inter = 16, vocab = 32, kv = 4;
  const t = (name: string, shape: number[], ones = false): Tensor => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = Array.from({ length: n }, () => (ones ? 1 : (rnd() - 0.5) * 0.2));
    return { name, shape, values };
  };
  return [
    t('model.embed_tokens.weight', [vocab, h]),
    t('model.layers.0.input_layernorm.weight', [h], true),
    t('model.layers.0.self_attn.q_proj.weight', [h, h]),
    t('model.layers.0.self_attn.k_proj.weight', [kv, h]),
    t('model.layers.0.self_attn.v_proj.weight', [kv, h]),
    t('model.layers.0.self_attn.o_proj.weight', [h, h]),
    t('model.layers.0.post_attention_layernorm.weight', [h], true),
    t('model.layers.0.mlp.gate_proj.weight', [inter, h]),
    t('model.layers.0.mlp.up_proj.weight', [inter, h]),
    t('model.layers.0.mlp.down_proj.weight', [h, inter]),
    t('model.norm.weight', [h], true),
  ];
}

/** safetensors: u64 header length, JSON header padded with spaces to 8 bytes, BF16 data. */
function safetensors(tensors: Tensor[]): Uint8Array {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : 1));
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of sorted) {
    const bytes = t.values.length * 2;
    header[t.name] = { dtype: 'BF16', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let head = JSON.stringify(header);
  head += ' '.repeat((8 - (head.length % 8)) % 8);
  const out = new Uint8Array(8 + head.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(head.length), true);
  out.set(new TextEncoder().encode(head), 8);
  let p = 8 + head.length;
  for (const t of sorted) {
    for (const v of t.values) {
      view.setUint16(p, toBf16(v), true);
      p += 2;
    }
  }
  return out;
}

const LLAMA_CONFIG = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  bos_token_id: 1,
  eos_token_id: 2,
  head_dim: 4,
  hidden_act: 'silu',
  hidden_size: 8,
  initializer_range: 0.02,
  intermediate_size: 16,
  max_position_embeddings: 64,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 2,
  num_hidden_layers: 1,
  num_key_value_heads: 1,
  rms_norm_eps: 1e-5,
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  vocab_size: 32,
};

const TOKENIZER_CONFIG = {
  bos_token: '<s>',
  eos_token: '</s>',
  pad_token: '<pad>',
  unk_token: '<unk>',
  model_max_length: 64,
  chat_template:
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}",
};

function modelCard(title: string, extra = ''): string {
  return `---\nlicense: apache-2.0\nlibrary_name: transformers\npipeline_tag: text-generation\n${extra}---\n\n# ${title}\n\nA random 856-parameter Llama for WebTune's Hub tests. Not a useful model.\n`;
}

function makeModels(): void {
  const base = 'models/webtune/tiny-random-llama/';
  write(base + 'README.md', modelCard('tiny-random-llama'));
  write(base + 'config.json', json(LLAMA_CONFIG));
  write(base + 'generation_config.json', json({ bos_token_id: 1, eos_token_id: 2, do_sample: false }));
  write(base + 'tokenizer_config.json', json(TOKENIZER_CONFIG));
  write(base + 'model.safetensors', safetensors(llamaTensors(1)));
  write(
    base + '.mock.json',
    json({
      cardData: { license: 'apache-2.0', library_name: 'transformers', pipeline_tag: 'text-generation' },
    }),
  );

  // Gated and sharded: the same architecture split over two files with an index.
  const gated = 'models/webtune/tiny-gated-llama/';
  const tensors = llamaTensors(2);
  const shards = [tensors.slice(0, 6), tensors.slice(6)];
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  shards.forEach((s, i) => {
    const name = `model-0000${i + 1}-of-00002.safetensors`;
    write(gated + name, safetensors(s));
    for (const t of s) {
      weightMap[t.name] = name;
      totalSize += t.values.length * 2;
    }
  });
  write(gated + 'model.safetensors.index.json', json({ metadata: { total_size: totalSize }, weight_map: weightMap }));
  write(gated + 'README.md', modelCard('tiny-gated-llama', 'extra_gated_prompt: Accept the tiny licence.\n'));
  write(gated + 'config.json', json(LLAMA_CONFIG));
  write(gated + 'tokenizer_config.json', json(TOKENIZER_CONFIG));
  write(gated + '.mock.json', json({ gated: 'manual', cardData: { license: 'other' } }));

  const priv = 'models/webtune/tiny-private-llama/';
  write(priv + 'config.json', json(LLAMA_CONFIG));
  write(priv + '.mock.json', json({ private: true }));
}

// ---- ShareGPT dataset: JSONL in main, parquet on refs/convert/parquet ----

type Row = { conversations: { from: string; value: string }[]; source: string; score: number };

function makeRows(): { train: Row[]; test: Row[] } {
  const rows: Row[] = [];
  for (let i = 0; i < 15; i++) {
    const a = i + 2;
    const b = (i * 7) % 10;
    const conversations = [
      { from: 'human', value: `What is ${a} plus ${b}?` },
      { from: 'gpt', value: `${a} plus ${b} is ${a + b}.` },
    ];
    if (i % 4 === 0) {
      conversations.unshift({ from: 'system', value: 'You answer sums briefly.' });
    }
    rows.push({ conversations, source: i % 3 === 0 ? 'sums-a' : 'sums-b', score: Math.round((5 - i * 0.125) * 1000) / 1000 });
  }
  return { train: rows.slice(0, 12), test: rows.slice(12) };
}

const CONVERSATION_SCHEMA = [
  { name: 'root', num_children: 3 },
  { name: 'conversations', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
  { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
  { name: 'element', repetition_type: 'OPTIONAL', num_children: 2 },
  { name: 'from', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
  { name: 'value', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
  { name: 'source', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
  { name: 'score', type: 'DOUBLE', repetition_type: 'OPTIONAL' },
] as const;

function parquet(rows: Row[]): Uint8Array {
  const buf = parquetWriteBuffer({
    columnData: [
      { name: 'conversations', data: rows.map((r) => r.conversations) },
      { name: 'source', data: rows.map((r) => r.source) },
      { name: 'score', data: rows.map((r) => r.score) },
    ],
    schema: CONVERSATION_SCHEMA.map((e) => ({ ...e })),
  });
  return new Uint8Array(buf);
}

function makeDatasets(): void {
  const base = 'datasets/webtune/tiny-sharegpt/';
  const { train, test } = makeRows();
  const jsonl = (rows: Row[]): string => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
  write(
    base + 'README.md',
    '---\nlicense: mit\ntask_categories:\n- text-generation\n---\n\n# tiny-sharegpt\n\n15 ShareGPT conversations about sums, for WebTune tests.\n',
  );
  write(base + 'data/train.jsonl', jsonl(train));
  write(base + 'data/test.jsonl', jsonl(test));
  const branch = 'refs-convert-parquet/';
  write(base + branch + 'default/train/0000.parquet', parquet(train));
  write(base + branch + 'default/test/0000.parquet', parquet(test));
  write(
    base + '.mock.json',
    json({
      branches: { 'refs/convert/parquet': 'refs-convert-parquet' },
      cardData: { license: 'mit', task_categories: ['text-generation'] },
    }),
  );
}

makeModels();
makeDatasets();
console.log(`fixtures written to ${ROOT}`);
