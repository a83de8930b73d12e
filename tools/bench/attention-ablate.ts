// Where the training attention's time goes by the order of its work: the 8B's tensor-core forward and
// backward (f16 q, k, v beside f32, as training runs them) timed with lines of the generated shaders
// permuted (the same work in another order; the driver schedules each order differently, which moved
// the NF4 GEMM by 18%: bench/tensor-core-notes.md, session 17). Every edit keeps the shader's length,
// so it can stand in for the engine's under the same kernel name (Kernels.get checks lengths).
//   base               the shaders the engine runs
//   v-fetch-late       forward: the tile's v fetched after q·kᵀ instead of before it
//   dkv-stores-q-first, dkv-stores-do-first   backward dkv: a tile's q stores all before (after) dO's, not in pairs
//   dkv-fetch-q-first, dkv-fetch-do-first     the same for the next tile's fetches
//   dkv-fetch-late     backward dkv: the next tile's fetches after the scores' products
//   fwd-stores-reversed, fwd-fetches-reversed  forward: the tile's stores (fetches) last to first
//   fwd-k-fetch-late   forward: the next tile's k fetched after p·v instead of before it
//   dq-stores-k-first, dq-stores-v-first, dq-fetch-k-first  backward dq: k's and v's grouped, not in pairs
//   dq-fetch-late      backward dq: the next tile's fetches after the scores' products
//   fwd-clamped, bwd-clamped, clamped  the tiles' stores and the lanes' score reads and weight stores with
//               the plain indices that Chrome's robustness clamps (before session 19: the shaders reduce them
//               by constants, which Tint's range analysis bounds). These edits change the text: comments are
//               dropped to keep the length.
import type { Gpu } from '../../src/engine/gpu.ts';
import { Kernels } from '../../src/engine/kernels.ts';
import { attentionMmaBackwardSource, attentionMmaSource } from '../../src/engine/attention-mma.ts';
import { parseModelConfig } from '../../src/engine/arch.ts';
import { LOAD_CONFIGS } from './load.ts';
import { timeAttention } from './attention.ts';
import { edit, editText, reorderRuns } from './shader-edit.ts';

export interface AttentionAblateResult {
  op: 'attention-ablate';
  variant: string;
  forwardMs: number;
  backwardMs: number;
}

/** `edit`, checked to keep the shader's length (the stand-in must only permute its lines). */
function permute(source: string, pattern: RegExp, replacement: (m: string, ...groups: string[]) => string): string {
  const out = edit(source, pattern, replacement);
  if (out.length !== source.length) throw new Error(`attention ablate: ${pattern} changed the shader's length`);
  return out;
}

/** Runs of consecutive lines matching `line` regrouped: those matching `first` before the rest. */
function group(source: string, line: string, first: RegExp): string {
  return reorderRuns(source, line, (lines) => [...lines.filter((l) => first.test(l)), ...lines.filter((l) => !first.test(l))]);
}

/** Runs of consecutive lines matching `line`, each reversed. */
function reverseRuns(source: string, line: string): string {
  return reorderRuns(source, line, (lines) => lines.reverse());
}

/** `from` replaced by `to` (each must be there), then the shader without its comments, padded to its length (Kernels.get). */
function rewrite(source: string, pairs: [string, string][]): string {
  const out = pairs.reduce((x, [from, to]) => editText(x, from, to), source);
  const bare = out.replace(/\/\*[\s\S]*?\*\//g, '').replace(/[ \t]*\/\/[^\n]*/g, '');
  if (bare.length > source.length) throw new Error('attention ablate: the edited shader is longer than the original even without comments');
  return bare + ' '.repeat(source.length - bare.length);
}

// [plain, bounded] forms of the index lines (the shaders take the bounded ones): c, a multiple of 4
// below n, as ((c / 4u) % (n / 4u)) * 4u.
const c4 = (n: string) => `((c / 4u) % (${n} / 4u)) * 4u`;

const FWD_INDEX_FORMS: [string, string][] = [
  [
    '  let s = share_at(tid, i);\n  let at = (s.x % 16u) * SK + s.y * 4u;\n  tile[s.x / 16u][at] = x.x;\n  tile[s.x / 16u][at + 1u] = x.y;\n  tile[s.x / 16u][at + 2u] = x.z;\n  tile[s.x / 16u][at + 3u] = x.w;',
    '  let f = tid + i * 128u;\n  let r = (f / V4) % 64u;\n  let at = (r % 16u) * SK + (f % V4) * 4u;\n  tile[r / 16u][at] = x.x;\n  tile[r / 16u][at + 1u] = x.y;\n  tile[r / 16u][at + 2u] = x.z;\n  tile[r / 16u][at + 3u] = x.w;',
  ],
  [
    '  let at = rl * SS + c;\n  let s = vec4f(stage[sg][at], stage[sg][at + 1u], stage[sg][at + 2u], stage[sg][at + 3u]) * p.scale_log2;',
    `  let cb = ${c4('BC')};\n  let at = (rl % 16u) * SS + cb;\n  let s = vec4f(stage[sg % 4u][at], stage[sg % 4u][at + 1u], stage[sg % 4u][at + 2u], stage[sg % 4u][at + 3u]) * p.scale_log2;`,
  ],
  ['key_seg[ks][c], key_seg[ks][c + 1u], key_seg[ks][c + 2u], key_seg[ks][c + 3u]', 'key_seg[ks][cb], key_seg[ks][cb + 1u], key_seg[ks][cb + 2u], key_seg[ks][cb + 3u]'],
  ['      let at = rl * SP + c;\n      pw[sg][at]', `      let at = rl * SP + ${c4('BC')};\n      pw[sg][at]`],
];

const BWD_INDEX_FORMS: [string, string][] = [
  [
    '  let at = (r % 16u) * SK + c * 4u;\n  kvt[r / 16u][at] = x.x;\n  kvt[r / 16u][at + 1u] = x.y;\n  kvt[r / 16u][at + 2u] = x.z;\n  kvt[r / 16u][at + 3u] = x.w;',
    '  let rr = r % 64u;\n  let at = (rr % 16u) * SK + (c % V4) * 4u;\n  kvt[rr / 16u][at] = x.x;\n  kvt[rr / 16u][at + 1u] = x.y;\n  kvt[rr / 16u][at + 2u] = x.z;\n  kvt[rr / 16u][at + 3u] = x.w;',
  ],
  ['      let at = rl * SQ + c;\n      let s4', `      let cb = ${c4('32u')};\n      let at = rl * SQ + cb;\n      let s4`],
  ['dq_seg[t % 2u][c], dq_seg[t % 2u][c + 1u], dq_seg[t % 2u][c + 2u], dq_seg[t % 2u][c + 3u]', 'dq_seg[t % 2u][cb], dq_seg[t % 2u][cb + 1u], dq_seg[t % 2u][cb + 2u], dq_seg[t % 2u][cb + 3u]'],
  [
    '  let col = c * 4u;\n  let bi = base + (r / 16u) * 2u + col / DH;\n  let at = (r % 16u) * SKH + col % DH;',
    '  let col = (c % V4) * 4u;\n  let bi = (base + ((r % 64u) / 16u) * 2u + col / DH) % 8u;\n  let at = (r % 16u) * SKH + col % DH;',
  ],
];

const plain = (forms: [string, string][]) => forms.map(([p, b]): [string, string] => [b, p]);

type Edit = { forward?: (s: string) => string; backward?: (s: string) => string };

export const ATTENTION_EDITS: Record<string, Edit> = {
  'v-fetch-late': { forward: (s) => permute(s, /((?:\n\s*x\d+ = fetch_kv\(true[^\n]*;)+)(\n {4}\{[\s\S]*?\n {4}\})/, (_m, f, p) => p + f) },
  'dkv-stores-q-first': { backward: (s) => group(s, 'dkv_store_(?:q|do)\\(', /dkv_store_q/) },
  'dkv-stores-do-first': { backward: (s) => group(s, 'dkv_store_(?:q|do)\\(', /dkv_store_do/) },
  'dkv-fetch-q-first': { backward: (s) => group(s, 'y(?:q|o)\\d+ = dkv_fetch_(?:q|do)\\(', /dkv_fetch_q/) },
  'dkv-fetch-do-first': { backward: (s) => group(s, 'y(?:q|o)\\d+ = dkv_fetch_(?:q|do)\\(', /dkv_fetch_do/) },
  'fwd-stores-reversed': { forward: (s) => reverseRuns(s, 'store_tile\\(') },
  'fwd-fetches-reversed': { forward: (s) => reverseRuns(s, 'x\\d+ = fetch_kv\\(') },
  'fwd-k-fetch-late': {
    forward: (s) => permute(s, /(\n {4}if \(t \+ 1u < tiles\) \{[\s\S]*?\n {4}\})(\n {4}\{[\s\S]*?\n {4}\})(\n {2}\})/, (_m, f, p, end) => p + f + end),
  },
  'dq-stores-k-first': { backward: (s) => group(s, 'dq_store_kv\\(', /dq_store_kv\(false/) },
  'dq-stores-v-first': { backward: (s) => group(s, 'dq_store_kv\\(', /dq_store_kv\(true/) },
  'dq-fetch-k-first': { backward: (s) => group(s, 'x[kv]\\d+ = dq_fetch_kv\\(', /dq_fetch_kv\(false/) },
  'dq-fetch-late': {
    backward: (s) => permute(s, /(\n {4}if \(t \+ 1u < tiles\) \{\n\s*xk0 = [\s\S]*?\n {4}\})(\n {4}\{\n\s*var s0 = [\s\S]*?\n {4}\})/, (_m, f, p) => p + f),
  },
  'fwd-clamped': { forward: (s) => rewrite(s, plain(FWD_INDEX_FORMS)) },
  'bwd-clamped': { backward: (s) => rewrite(s, plain(BWD_INDEX_FORMS)) },
  clamped: { forward: (s) => rewrite(s, plain(FWD_INDEX_FORMS)), backward: (s) => rewrite(s, plain(BWD_INDEX_FORMS)) },
  'dkv-fetch-late': {
    backward: (s) => permute(s, /(\n {4}if \(it \+ 1u < total\) \{[\s\S]*?\n {4}\})(\n {4}\{\n\s*var st = [\s\S]*?\n {4}\})/, (_m, f, p) => p + f),
  },
};

/** `only`: the variants to time (empty: all); the base always. */
export async function benchAttentionAblate(gpu: Gpu, repeats: number, only: string[] = []): Promise<AttentionAblateResult[]> {
  const results: AttentionAblateResult[] = [];
  if (!gpu.info.mmaF16) {
    console.log('attention ablate: this device has no f16 16x16x16 subgroup matrices; skipped');
    return results;
  }
  const arch = parseModelConfig(LOAD_CONFIGS['8b']);
  const D = arch.headDim;
  const names = Object.keys(ATTENTION_EDITS);
  const variants = ['base', ...names.filter((n) => !names.some((x) => only.includes(x)) || only.includes(n))];
  for (const variant of variants) {
    const edit = ATTENTION_EDITS[variant] ?? {};
    // A fresh cache, holding the edited shaders under the engine's names before the engine asks for them.
    const kernels = new Kernels(gpu);
    kernels.get({ name: `attention-mma(D=${D},S=f32,Q=f16)`, source: (edit.forward ?? ((s) => s))(attentionMmaSource(D, 'f32', 'f16')), dtype: 'f32', constants: { LSE_KNOWN: false } });
    const backward = (edit.backward ?? ((s) => s))(attentionMmaBackwardSource(D, 'f32', 'f16'));
    for (const entryPoint of ['delta', 'dkv_main', 'dq_main']) kernels.get({ name: `attention-mma-backward(D=${D},S=f32,Q=f16)`, source: backward, dtype: 'f32', entryPoint });
    const { fwd, bwd } = await timeAttention(gpu, kernels, 'f32', arch, 2048, repeats, 'f16');
    const r: AttentionAblateResult = { op: 'attention-ablate', variant, forwardMs: fwd * 1e3, backwardMs: bwd * 1e3 };
    results.push(r);
    console.log(`attention ablate 8b ${variant}: forward ${r.forwardMs.toFixed(3)} ms, backward ${r.backwardMs.toFixed(3)} ms`);
  }
  return results;
}
