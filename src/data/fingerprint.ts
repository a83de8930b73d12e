// The identity of a prepared dataset: everything that changes its bytes, hashed. Re-preparing
// with the same key finds the stored shards (a cache hit, or a resume).

import type { FormatMapping } from './formats.ts';
import type { EffectiveTemplate } from './templates.ts';

export interface FingerprintKey {
  version: 1;
  /** SourceInfo.identity: file name + size + mtime, or Hub id + revision + split + limit. */
  source: string;
  mapping: FormatMapping;
  /** Tokenizer id and a digest of its behaviour. */
  tokenizer: string;
  template: { id: string; source: string; endOfTurn: string };
  maxSeqLength: number;
  overflow: 'truncate' | 'drop';
  packing: boolean;
  trainOnResponsesOnly: boolean;
  validationFraction: number;
  seed: number;
  shardTokens: number;
}

export function templateKey(t: EffectiveTemplate): FingerprintKey['template'] {
  return { id: t.id, source: t.source, endOfTurn: t.endOfTurn };
}

/** JSON with object keys sorted, so equal values give equal text. */
export function stableStringify(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'null';
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${stableStringify(o[k])}`).join(',')}}`;
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** 16 hex digits (64 bits) of SHA-256 over the key. */
export async function fingerprint(key: FingerprintKey): Promise<string> {
  return (await sha256Hex(stableStringify(key))).slice(0, 16);
}
