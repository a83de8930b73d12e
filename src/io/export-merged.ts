// The merged 16-bit export (specs/formats.md §5): the model's tensors, with the adapter merged in,
// as bf16 or f16 safetensors shards of at most 5 GB (model.safetensors.index.json when there is
// more than one), config.json (torch_dtype set, quantization_config dropped), generation_config.json
// and the tokenizer files with the training chat template (and Unsloth's EOS rename, if the
// template maps EOS). Every file streams: a shard reads and converts one tensor at a time.

import { DEFAULT_MAX_SHARD_BYTES, formatShardIndex, planShards, safetensorsFileSize, writeSafetensors } from './safetensors.ts';
import type { TensorToWrite } from './safetensors.ts';
import { f32ArrayToBf16, f32ArrayToF16, u16ToBytesLE } from './dtype.ts';
import { textFile } from './export-files.ts';
import type { ExportFile } from './export-files.ts';
import type { WeightSource } from './export-arch.ts';
import { prefetchData } from './quant-pool.ts';

export class MergedExportError extends Error {
  override name = 'MergedExportError';
}

export type MergedDtype = 'bfloat16' | 'float16';

export interface MergedExportOptions {
  /** The tensors to write (transformers names and shapes), in checkpoint order; no quant-state tensors. */
  tensors: readonly { name: string; shape: readonly number[] }[];
  /** f32 weights with the adapter merged (mergedWeights). */
  weights: WeightSource;
  dtype: MergedDtype;
  /** The base model's config.json, parsed. */
  config: Record<string, unknown>;
  /** Its text, when at hand: numbers are written back as it writes them (mergedConfigText). */
  configText?: string;
  /** Its generation_config.json, if any. */
  generationConfig?: Record<string, unknown> | null;
  /** tokenizer.json and tokenizer_config.json, parsed. */
  tokenizerJson: unknown;
  tokenizerConfig: Record<string, unknown>;
  /** The training template's Jinja (EffectiveTemplate.exportSource). */
  chatTemplate?: string | null;
  /** Unsloth's map_eos_token rename (EffectiveTemplate.eosRename). */
  eosRename?: { from: string; to: string } | null;
  maxShardBytes?: number;
  /** More files to include as they are (special_tokens_map.json, README.md, …). */
  extraFiles?: readonly ExportFile[];
  /** f32 -> the dtype's little-endian bytes (ggml's F16/BF16 give the same bytes, here or in a
   * worker pool); default: src/io/dtype.ts's conversions on this thread. */
  convert?: (dtype: MergedDtype, values: Float32Array) => Uint8Array | Promise<Uint8Array>;
  /** Read (and merge) the next big tensor while this one is converted and written (worth it when
   * the work runs in a pool; costs one more tensor in memory). */
  readAhead?: boolean;
}

const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;

/** config.json for the merged model: quantization_config dropped, the 16-bit dtype set. */
export function mergedConfig(config: Record<string, unknown>, dtype: MergedDtype): Record<string, unknown> {
  const c: Record<string, unknown> = { ...config };
  delete c.quantization_config;
  // transformers 5 writes `dtype`, 4.x (and tools that read config.json, e.g. llama.cpp's
  // converter) `torch_dtype`: write both.
  c.dtype = dtype;
  c.torch_dtype = dtype;
  return c;
}

/**
 * mergedConfig as config.json text. A number whose value is unchanged is written as the source text
 * wrote it: JSON.stringify writes 8.0 as 8 and 1e-05 as 0.00001, and transformers reads 8 as an int
 * (4.x warns that rope_scaling.factor should be a float). Without the source text, JSON.stringify's.
 */
export function mergedConfigText(config: Record<string, unknown>, dtype: MergedDtype, sourceText?: string): string {
  const c = mergedConfig(config, dtype);
  const literals = sourceText === undefined ? null : numberLiterals(sourceText);
  if (!literals || literals.size === 0) return json(c);
  // Numbers to keep become placeholder strings, put back as their literal after stringify.
  const kept: string[] = [];
  const mark = (v: unknown, path: (string | number)[]): unknown => {
    if (typeof v === 'number') {
      const lit = literals.get(JSON.stringify(path));
      if (lit === undefined || Number(lit) !== v || lit === JSON.stringify(v)) return v;
      kept.push(lit);
      return `\u0000${kept.length - 1}\u0000`;
    }
    if (Array.isArray(v)) return v.map((x, k) => mark(x, [...path, k]));
    if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, mark(x, [...path, k])]));
    return v;
  };
  return json(mark(c, [])).replace(/"\\u0000(\d+)\\u0000"/g, (_, k: string) => kept[Number(k)]);
}

/** Every number literal of a JSON text by its path (JSON.stringify of the keys and indices to it). */
function numberLiterals(text: string): Map<string, string> | null {
  const out = new Map<string, string>();
  const NUM = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null/y;
  let i = 0;
  const space = (): void => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\n' || text[i] === '\r' || text[i] === '\t')) i++;
  };
  const string = (): string => {
    const start = i++;
    while (text[i] !== '"') {
      if (i >= text.length) throw new SyntaxError('unterminated string');
      i += text[i] === '\\' ? 2 : 1;
    }
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (path: (string | number)[]): void => {
    space();
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      space();
      if (text[i] === close) {
        i++;
        return;
      }
      for (let k = 0; ; k++) {
        space();
        let key: string | number = k;
        if (c === '{') {
          key = string();
          space();
          i++; // ':'
        }
        value([...path, key]);
        space();
        const next = text[i++];
        if (next === close) return;
        if (next !== ',') throw new SyntaxError(`expected , or ${close} at ${i - 1}`);
      }
    }
    if (c === '"') {
      string();
      return;
    }
    NUM.lastIndex = i;
    const m = NUM.exec(text);
    if (!m) throw new SyntaxError(`unexpected ${JSON.stringify(c)} at ${i}`);
    if (m[0] !== 'true' && m[0] !== 'false' && m[0] !== 'null') out.set(JSON.stringify(path), m[0]);
    i += m[0].length;
  };
  try {
    value([]);
  } catch {
    return null; // not the JSON it was parsed from: write what JSON.stringify writes
  }
  return out;
}

/**
 * Renames token text `from` to `to` everywhere in a tokenizer file, as Unsloth's map_eos_token
 * does (a string replacement on the serialized JSON; if `to` already exists the two swap).
 */
export function renameToken<T>(file: T, from: string, to: string): T {
  const esc = (s: string): string => JSON.stringify(s).slice(1, -1);
  const marker = '\u0000webtune-rename\u0000';
  let text = JSON.stringify(file);
  text = text.split(esc(from)).join(esc(marker));
  text = text.split(esc(to)).join(esc(from));
  text = text.split(esc(marker)).join(esc(to));
  return JSON.parse(text) as T;
}

/** tokenizer.json and tokenizer_config.json for the export: template set, EOS renamed if asked. */
export function exportTokenizerFiles(
  tokenizerJson: unknown,
  tokenizerConfig: Record<string, unknown>,
  chatTemplate?: string | null,
  eosRename?: { from: string; to: string } | null,
): { tokenizerJson: unknown; tokenizerConfig: Record<string, unknown> } {
  let tj = tokenizerJson;
  let tc: Record<string, unknown> = { ...tokenizerConfig };
  if (eosRename) {
    tj = renameToken(tj, eosRename.from, eosRename.to);
    const template = tc.chat_template;
    tc = renameToken(tc, eosRename.from, eosRename.to);
    tc.chat_template = template; // the template is replaced below, never rewritten
  }
  if (chatTemplate) tc.chat_template = chatTemplate;
  return { tokenizerJson: tj, tokenizerConfig: tc };
}

/** The files of the merged export, each streamed when written. */
export function mergedModelFiles(opts: MergedExportOptions): ExportFile[] {
  const tied = opts.config.tie_word_embeddings === true;
  const list = opts.tensors.filter((t) => !(tied && t.name === 'lm_head.weight'));
  if (list.length === 0) throw new MergedExportError('no tensors to write');
  const dtype = opts.dtype === 'bfloat16' ? 'BF16' : 'F16';
  const toBits = opts.dtype === 'bfloat16' ? f32ArrayToBf16 : f32ArrayToF16;
  const convert = opts.convert ?? ((_: MergedDtype, w: Float32Array) => u16ToBytesLE(toBits(w)));
  const tensors: TensorToWrite[] = list.map((t) => {
    const n = t.shape.reduce((a, b) => a * b, 1);
    return {
      name: t.name,
      dtype,
      shape: [...t.shape],
      data: async () => {
        const w = await opts.weights.read(t.name);
        if (w.length !== n) throw new MergedExportError(`${t.name}: ${w.length} values, expected [${t.shape.join(', ')}]`);
        return convert(opts.dtype, w);
      },
    };
  });
  const ordered = opts.readAhead ? prefetchData(tensors, (t) => t.shape.reduce((a, b) => a * b, 1)) : tensors;
  const plan = planShards(ordered, opts.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES);
  const files: ExportFile[] = plan.shards.map((s) => ({
    name: s.fileName,
    size: safetensorsFileSize(s.tensors, { format: 'pt' }),
    chunks: () => writeSafetensors(s.tensors, { format: 'pt' }),
  }));
  if (plan.index) files.push(textFile('model.safetensors.index.json', formatShardIndex(plan.index)));
  files.push(textFile('config.json', mergedConfigText(opts.config, opts.dtype, opts.configText)));
  const gen = opts.generationConfig ?? {
    _from_model_config: true,
    ...(opts.config.bos_token_id !== undefined ? { bos_token_id: opts.config.bos_token_id } : {}),
    ...(opts.config.eos_token_id !== undefined ? { eos_token_id: opts.config.eos_token_id } : {}),
  };
  files.push(textFile('generation_config.json', json(gen)));
  const tok = exportTokenizerFiles(opts.tokenizerJson, opts.tokenizerConfig, opts.chatTemplate, opts.eosRename);
  files.push(textFile('tokenizer.json', JSON.stringify(tok.tokenizerJson)));
  files.push(textFile('tokenizer_config.json', json(tok.tokenizerConfig)));
  for (const f of opts.extraFiles ?? []) files.push(f);
  return files;
}
