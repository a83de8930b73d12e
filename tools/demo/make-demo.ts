// Makes the embedded offline demo (public/demo/): a tiny random Llama with its own small
// byte-level BPE tokenizer, and a ShareGPT dataset of a learnable task (sorting words).
//
//   npx tsx tools/demo/make-demo.ts [outDir]      (default: public/demo next to this repo's tools/)
//
// Deterministic: fixed seeds, a seeded PRNG with exact arithmetic, no timestamps; running it again
// gives byte-identical files (tests/demo.test.ts checks this against the committed copy).
//
// Layout written:
//   model/config.json, generation_config.json     LlamaForCausalLM, hidden 64, 2 layers, bf16
//   model/model.safetensors                        written with src/io/safetensors.ts
//   model/tokenizer.json, tokenizer_config.json    byte-level BPE, 512 tokens, ChatML template
//   data/sort-words.jsonl                          300 ShareGPT conversations
//   manifest.json                                  what the app lists (paths relative to public/)
// Tokenizer conventions (see tokenizer.ts): BOS <|endoftext|> is prepended on encode, as Llama 3
// prepends <|begin_of_text|>; EOS is <|im_end|>; PAD is <|pad|>; the chat template is ChatML.

import { mkdir, open, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeSafetensors } from '../../src/io/safetensors.ts';
import { trainBpe } from './bpe.ts';
import { makeSortWordsRows, toJsonl, type ShareGptRow } from './dataset.ts';
import { generationConfig, llamaConfig, llamaWeights } from './model.ts';
import { mulberry32 } from './prng.ts';
import { BOS_TOKEN, buildTokenizer, EOS_TOKEN, PAD_TOKEN, renderChatml, SPECIAL_TOKENS } from './tokenizer.ts';

export const DATASET_SEED = 20240901;
export const WEIGHTS_SEED = 20240902;
export const DATASET_ROWS = 300;
/** Whole tokenizer (learned tokens + the 4 special ones): a multiple of 8, = config vocab_size. */
export const VOCAB_SIZE = 512;

export const MODEL_FILES = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];
export const DATASET_FILE = 'data/sort-words.jsonl';

export interface DemoManifest {
  model: { id: string; name: string; path: string; files: { path: string; size: number }[]; params: number };
  datasets: { id: string; name: string; path: string; format: 'sharegpt'; rows: number; bytes: number }[];
}

const ROLE: Record<string, string> = { system: 'system', human: 'user', gpt: 'assistant' };

/** ShareGPT turns -> role/content messages (the mapping the app's data pipeline applies). */
export function shareGptToMessages(row: ShareGptRow): { role: string; content: string }[] {
  return row.conversations.map((t) => ({ role: ROLE[t.from], content: t.value }));
}

export async function makeDemo(outDir: string): Promise<DemoManifest> {
  const modelDir = join(outDir, 'model');
  await mkdir(modelDir, { recursive: true });
  await mkdir(join(outDir, dirname(DATASET_FILE)), { recursive: true });

  // 1. Dataset.
  const rows = makeSortWordsRows(mulberry32(DATASET_SEED), DATASET_ROWS);
  const jsonl = toJsonl(rows);
  await writeFile(join(outDir, DATASET_FILE), jsonl);

  // 2. Tokenizer, learned on the ChatML text of the dataset with the special tokens cut out.
  const specials = new RegExp(SPECIAL_TOKENS.map((t) => t.replace(/[|]/g, '\\|')).join('|'), 'g');
  const corpus = rows.flatMap((r) => renderChatml(shareGptToMessages(r)).split(specials)).filter((s) => s !== '');
  const bpe = trainBpe(corpus, VOCAB_SIZE - SPECIAL_TOKENS.length);
  if (bpe.vocab.length !== VOCAB_SIZE - SPECIAL_TOKENS.length) {
    throw new Error(`BPE stopped at ${bpe.vocab.length} tokens: the corpus is too small for ${VOCAB_SIZE}`);
  }
  const tok = buildTokenizer(bpe);
  await writeJson(join(modelDir, 'tokenizer.json'), tok.tokenizerJson);
  await writeJson(join(modelDir, 'tokenizer_config.json'), tok.tokenizerConfigJson);

  // 3. Model.
  const ids = { vocabSize: tok.vocabSize, bosTokenId: tok.ids[BOS_TOKEN], eosTokenId: tok.ids[EOS_TOKEN], padTokenId: tok.ids[PAD_TOKEN] };
  await writeJson(join(modelDir, 'config.json'), llamaConfig(ids));
  await writeJson(join(modelDir, 'generation_config.json'), generationConfig(ids));
  const { tensors, params } = llamaWeights(ids, mulberry32(WEIGHTS_SEED));
  const fh = await open(join(modelDir, 'model.safetensors'), 'w');
  try {
    for await (const chunk of writeSafetensors(tensors)) await fh.write(chunk);
  } finally {
    await fh.close();
  }

  // 4. Manifest.
  const files = [];
  for (const f of MODEL_FILES) files.push({ path: f, size: (await stat(join(modelDir, f))).size });
  const manifest: DemoManifest = {
    model: { id: 'webtune/demo-tiny-llama', name: 'Demo (offline)', path: 'demo/model', files, params },
    datasets: [
      {
        id: 'webtune/demo-sort-words',
        name: 'Sort words (demo)',
        path: `demo/${DATASET_FILE}`,
        format: 'sharegpt',
        rows: rows.length,
        bytes: new TextEncoder().encode(jsonl).length,
      },
    ],
  };
  await writeJson(join(outDir, 'manifest.json'), manifest);
  return manifest;
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFile(path, `${JSON.stringify(value, null, 2)}\n`);
}

export const DEFAULT_OUT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../public/demo');

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const out = resolve(process.argv[2] ?? DEFAULT_OUT_DIR);
  const manifest = await makeDemo(out);
  const total = manifest.model.files.reduce((s, f) => s + f.size, 0) + manifest.datasets[0].bytes;
  console.log(`demo written to ${out}: ${manifest.model.params} params, ${manifest.datasets[0].rows} rows, ${total} bytes`);
}
