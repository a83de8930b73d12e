// Tokenizers from @huggingface/transformers, built from a model's tokenizer.json and
// tokenizer_config.json that we fetch ourselves: from a folder URL (the demo model next to the
// app), or from a model repo on the Hub (or the mock Hub) through HubClient, so the Hub base URL,
// the token and the error messages are the app's. (transformers.js's own loader does not take an
// absolute URL as its local model path, and keeps its settings in one global `env`.)

import * as transformers from '@huggingface/transformers';
import { HubClient, HubError } from '../io/hub.ts';
import { DataError } from './errors.ts';
import { sha256Hex } from './fingerprint.ts';
import { withPretokenMemo } from './pretoken-memo.ts';
import { readTokenizerInfo } from './tokenizer-info.ts';
import type { TokenizerInfo, TokenizerLike } from './tokenizer-info.ts';

export type TokenizerSource =
  /** A folder URL (ending in "/") holding tokenizer.json and tokenizer_config.json. */
  | { kind: 'url'; id: string; url: string }
  /** A model repo: `endpoint` is the Hub base URL. */
  | { kind: 'hub'; id: string; endpoint: string; revision?: string; token?: string };

export interface TokenizerFiles {
  tokenizerJson: unknown;
  tokenizerConfig: Record<string, unknown>;
  /** chat_template.jinja, for repos that keep the template out of tokenizer_config.json. */
  chatTemplate?: string | null;
}

export interface LoadedTokenizer {
  /** e.g. "webtune/demo-tiny-llama" */
  id: string;
  /** Changes when the tokenizer encodes differently (part of the dataset fingerprint). */
  digest: string;
  tokenizer: TokenizerLike;
  info: TokenizerInfo;
  /** What it was built from (tokenize workers build their own copy from these). */
  files: TokenizerFiles;
}

type TokenizerClass = new (json: unknown, config: unknown) => TokenizerLike;

/** The class transformers.js would pick (tokenizer_class, without "Fast"), else the base class. */
export async function tokenizerFromFiles(id: string, files: TokenizerFiles): Promise<LoadedTokenizer> {
  const config = { ...files.tokenizerConfig };
  if (config.chat_template === undefined && files.chatTemplate) config.chat_template = files.chatTemplate;
  const name = typeof config.tokenizer_class === 'string' ? config.tokenizer_class.replace(/Fast$/, '') : 'PreTrainedTokenizer';
  const classes = transformers as unknown as Record<string, unknown>;
  const cls = (typeof classes[name] === 'function' && /Tokenizer$/.test(name) ? classes[name] : transformers.PreTrainedTokenizer) as TokenizerClass;
  let tokenizer: TokenizerLike;
  try {
    tokenizer = withPretokenMemo(new cls(files.tokenizerJson, config), files.tokenizerJson, config);
  } catch (e) {
    throw new DataError('tokenizer', `The tokenizer files of ${id} could not be read: ${(e as Error).message}`);
  }
  const info = readTokenizerInfo(tokenizer);
  return { id, digest: await tokenizerDigest(tokenizer, info), tokenizer, info, files };
}

export async function loadTokenizer(source: TokenizerSource, fetchFn: typeof fetch = (u, i) => fetch(u, i)): Promise<LoadedTokenizer> {
  let get: (file: string, optional: boolean) => Promise<string | null>;
  if (source.kind === 'url') {
    const base = source.url.endsWith('/') ? source.url : `${source.url}/`;
    get = async (file, optional) => {
      const url = new URL(file, base).href;
      let res: Response;
      try {
        res = await fetchFn(url);
      } catch (e) {
        throw new DataError('tokenizer', `Could not fetch ${url}: ${(e as Error).message}`);
      }
      if (res.status === 404 && optional) return null;
      if (!res.ok) throw new DataError('tokenizer', `The tokenizer of ${source.id} is missing: ${url} answered HTTP ${res.status}.`);
      return res.text();
    };
  } else {
    const hub = new HubClient({ endpoint: source.endpoint, token: source.token, fetch: fetchFn });
    const repo = { type: 'model' as const, id: source.id };
    get = async (file, optional) => {
      try {
        return await new Response(hub.download(repo, file, { revision: source.revision })).text();
      } catch (e) {
        if (optional && e instanceof HubError && e.kind === 'file-not-found') return null;
        throw new DataError('tokenizer', e instanceof Error ? e.message : String(e));
      }
    };
  }
  const [json, config, template] = await Promise.all([get('tokenizer.json', false), get('tokenizer_config.json', false), get('chat_template.jinja', true)]);
  const parse = (text: string | null, file: string): Record<string, unknown> => {
    try {
      return JSON.parse(text ?? '') as Record<string, unknown>;
    } catch {
      throw new DataError('tokenizer', `${file} of ${source.id} is not JSON.`);
    }
  };
  return tokenizerFromFiles(source.id, {
    tokenizerJson: parse(json, 'tokenizer.json'),
    tokenizerConfig: parse(config, 'tokenizer_config.json'),
    chatTemplate: template,
  });
}

const PROBE = 'Hello, world! 123 été 日本語 🙂\n\tcode() {}<|im_start|><|im_end|><|eot_id|>';

/** A hash of how the tokenizer behaves (ids of a probe text, special tokens, template). */
export async function tokenizerDigest(tok: TokenizerLike, info: TokenizerInfo): Promise<string> {
  const facts = {
    probe: tok.encode(PROBE, { add_special_tokens: true }),
    special: [...info.specialTokens].sort(),
    bos: info.bosId,
    eos: info.eosId,
    pad: info.padId,
    template: info.chatTemplate,
  };
  return (await sha256Hex(JSON.stringify(facts))).slice(0, 16);
}
