// Where the tensor-core GEMM's time goes, measured on the GEMM itself: the chosen kernel for each
// product, timed whole and with
// one part taken out of its k loop at a time (wrong results, by design: these only time). Tells the
// share of each part where the ceiling bench (mma-ceiling.ts) builds up from products alone.
// Products: dense-f16 (a · Bᵀ 4096^3, f16 a and out), dense-f16-n (a · B), dense-f32a (a · Bᵀ from f32
// rows scaled to f16, f32 out: the lm_head's variant), dense-lmhead (the 8B lm_head's x·Eᵀ, one 8192-row
// chunk of E), dense-lmhead-dy (its dlogits · E), nf4-forward / nf4-backward (the 8B's MLP), and
// nf4-forward-down, nf4-forward-kv. The four dense variants are scheduled differently by the driver
// (session 19): an edit is only known for the variant it was timed on.
//   base        the kernel the engine runs
//   tiling=NAME the kernel on another tiling (MMA_TILINGS or TRIAL_TILINGS; `tiling=NAME+edit` with edits)
//   narrow      a dense b's product with shares of four elements (8-byte loads) where the engine takes eight
//               (wideShares); composes as an edit does (`narrow+fetch-mid`, `tiling=NAME+narrow`)
//   zeros       the same on all-zero operands (the products' power draw depends on the data)
//   one-product one of the subgroup's result matrices multiplied per k step (TM x TN in the kernel):
//               the fetches, the staging and the barriers with almost no products
//   no-store    the shares fetched but not staged (the stores behind a condition that never holds)
//   no-fetch    the shares staged but made up in registers (no device loads); no-a-fetch, no-b-fetch: one tile's
//   no-a-store, no-b-store  one tile's shares fetched but not staged
//   no-barrier  the k loop's two barriers removed (races: timing only)
//   fetch-b-first  the k loop's B fetches before A's: the same work in another order
//   stores-swapped  the k loop's stores of A's and B's shares in the other order (storesBFirst)
//   stores-b-mid  B's stores between the two halves of A's
//   stores-interleaved, stores-reversed  the stores one of A's, one of B's ..., or last to first
//   fetch-early, fetch-mid, fetch-late  the next k step's fetches issued before the products, after the
//               first multiply step, or after all of them (the kernel's own place, fetchAfterFirstStep, throws)
//   lazy-left   each left matrix loaded just before its row of products (fewer operands live at once)
//   element-order  every lane stores its share in element order (as before session 12's storeLayout:
//               correct results, two- to four-way bank conflicts); a-/b-element-order: one tile only
//   b-other-layout  B's matrix loads read the same tile rows in the other layout (row- for column-major
//               and back): what the forward's column-major loads cost against the backward's row-major ones
//   order-gG    the grid walked in groups of G row blocks (rows fastest within a group, then the next
//               column block; the grid's size unchanged): G 1 walks columns first, G >= the row blocks
//               rows first (the x·Wᵀ products' order since session 12)
//   no-output   the epilogue's stores to out left out (the staging and its barriers stay)
//   epilogue-no-barrier  the epilogue's barriers removed (each subgroup reads back only its own stage:
//               races in principle, timing only)
//   direct-out  every result matrix stored straight to out with subgroupMatrixStore (no stage, no
//               barriers; no row scale, bias or bounds: timing only), f32 out only
//   no-absmax   NF4 only: the k loop's absmax loads left out (every block's scale 1.0)
//   b-tiled-fetch  NF4 forward only: W's shares fetched as if W were stored k step by k step (the BK
//               elements of every row of one k step together: a warp's eight rows one 128-byte run,
//               where W's rows put them 8 KB apart): wrong data, the same bytes, another address pattern
//   inline-stores  the stores of A's shares (and a dense B's) written out in main, every index a chain of
//               lets from tid (bounded by Tint's range analysis, as the engine's helpers are since session 18)
//   clamped-stores  the tile stores' indices in the helpers' plain arithmetic, which Chrome's robustness
//               clamps (the kernels' form before session 18, a dense B's before session 19)
//   bounded-epilogue  the epilogue's stage reads (write_stage, write_stage4) and row scales (a_scale[rb])
//               with indices reduced by constants, which Tint's range analysis bounds (no robustness clamps)
//   a-direct, b-direct  the k loop's left (right: a dense b with transB) matrices loaded straight from device
//               memory (no shares fetched or staged for that operand); -ahead: each one a k step early
//   fetch-ahead2  the next tiles fetched two k steps ahead into a second set of share registers (moved
//               into the first after each step); -unrolled: the loop twice a trip, the sets' roles swapped
//   half-a-fetch, half-b-fetch  half of one tile's interior shares loaded, the rest copies (a bound on wider loads)
//   half-stores  every other element of a share stored (whether the driver merges a share's pairs)
//   view-a-stores, view-b-stores  the tile's memory an untyped buffer (buffer_view): each share stored
//               as one vec2<u32> (8 bytes), the matrix loads through an f16 view
//   const-loop  the k loop bounded by a constant and left by a break: no guard from Tint (which adds a
//               64-bit iteration counter to every loop whose bound is not a constant), no plain trip count;
//               tiles-loop: the other way (the template's loop where the engine takes const-loop's, constKLoop)
//   down-loop, neg-loop  the k loop counting down to 0 (or an i32 up to 0): no guard, a plain trip count
//   no-table    NF4 only: each code converted and scaled without the code's lookup (a subgroupShuffle
//               since session 11, a workgroup-memory read before; the multiply and the rounding stay)
import type { Gpu } from '../../src/engine/gpu.ts';
import { submitPass, type Kernels } from '../../src/engine/kernels.ts';
import { aStoreIndex, bStoreIndex, encodeMmaMatmul, encodeMmaRows, K_LOOP, K_LOOP_CONST, MMA_TILINGS, type F16Rows, type MmaOperand, type MmaMatmulShape, type MmaTiling } from '../../src/engine/matmul-mma.ts';
import { destroyNf4 } from '../../src/engine/nf4.ts';
import { createTensor, type Tensor } from '../../src/engine/tensor.ts';
import { randomNf4, randomTensor } from './engine.ts';
import { rotationCopies, timePass } from './timing.ts';
import { edit, editText, reorderRuns } from './shader-edit.ts';

export interface MmaAblateResult {
  op: 'mma-ablate';
  what: 'dense-f16' | 'dense-f16-n' | 'dense-f32a' | 'dense-lmhead' | 'dense-lmhead-dy' | 'nf4-forward' | 'nf4-forward-down' | 'nf4-forward-kv' | 'nf4-backward';
  variant: string;
  /** [m, k, n]. */
  shape: number[];
  ms: number;
  tflops: number;
}

/** The block a workgroup takes, walking the grid in groups of g row blocks (the dispatch's grid as it is). */
function groupOrder(s: string, g: number): string {
  return edit(
    s,
    /let row0 = select\(wg\.y, wg\.x, ROWS_FASTEST\) \* BM;\s*let col0 = select\(wg\.x, wg\.y, ROWS_FASTEST\) \* BN;/,
    [
      'let nrb = (p.m + BM - 1u) / BM;',
      'let ncb = (p.nc + BN - 1u) / BN;',
      'let lin = select(wg.x + wg.y * ncb, wg.x + wg.y * nrb, ROWS_FASTEST);',
      `let grp = lin / (${g}u * ncb);`,
      `let within = lin % (${g}u * ncb);`,
      `let rows = min(${g}u, nrb - grp * ${g}u);`,
      `let row0 = (grp * ${g}u + within % rows) * BM;`,
      'let col0 = (within / rows) * BN;',
    ].join('\n  '),
  );
}

/** A share of a (or of a dense b) made up from two u32 expressions: four f16 or, with shares of eight, four words. */
function madeUp(s: string, x: string, y: string): string {
  return variantOf(s).wide ? `Share(${x}, ${y}, 0x3c003c00u, 0x38003800u)` : `Share(f16(${x}), f16((${y}) & 15u), 1.0h, 0.5h)`;
}

/** The A tile's shares made up in registers (no device loads) inside the matrices. */
function noFetchA(s: string): string {
  return edit(s, /fn fetch_a_in\(r: u32, k: u32\) -> Share \{[^\n]*\}/, `fn fetch_a_in(r: u32, k: u32) -> Share { return ${madeUp(s, 'r & 7u', 'k & 15u')}; }`);
}

/** The B tile's likewise. */
function noFetchB(s: string): string {
  return edit(
    s,
    /fn fetch_b_in\(tid: u32, i: u32, k0: u32, col0: u32\) -> BShare \{[\s\S]*?\n\}/,
    variantOf(s).kind === 'nf4'
      ? 'fn fetch_b_in(tid: u32, i: u32, k0: u32, col0: u32) -> BShare { return BShare(tid * 0x9e3779b9u + k0 + i, 0x3c000000u); }'
      : `fn fetch_b_in(tid: u32, i: u32, k0: u32, col0: u32) -> BShare { return ${madeUp(s, 'tid & 7u', 'k0 + i')}; }`,
  );
}

/** The k loop's header in the shader: the template's or its constant-bounded form (constKLoop). */
function kLoopHeader(s: string): string {
  const header = [K_LOOP, K_LOOP_CONST].find((h) => s.includes(h));
  if (!header) throw new Error("mma ablate: the k loop's header not found in the shader");
  return header;
}

/** Where the k loop starts in the shader (throwing where it is not there). */
function kLoopAt(s: string): number {
  return s.indexOf(kLoopHeader(s));
}

/** The generated shader's B source and layout, read from its text. */
function variantOf(s: string): { kind: 'dense' | 'nf4'; transB: boolean; wide: boolean } {
  return { kind: s.includes('alias BShare = vec2<u32>') ? 'nf4' : 'dense', transB: s.includes('const TRANS_B = true;'), wide: s.includes('const PER = 8u;') };
}

/** The k loop under another header (`t` defined by it, as the body uses it). */
function kLoopAs(s: string, header: string): string {
  const from = kLoopHeader(s);
  if (from === header) throw new Error('mma ablate: the k loop has that form already');
  return s.replace(from, header);
}

/** The k loop's fetch of the next k step placed before its products, between its first two steps, or after them. */
function placeFetch(s: string, where: 'early' | 'mid' | 'late'): string {
  const at = kLoopAt(s);
  const loop = s.slice(at);
  const block = /\n {4}if \(more\) \{\n\s*let k0 = \(t \+ 1u\) \* BK;[\s\S]*?\n {4}\}/.exec(loop)?.[0];
  if (!block) throw new Error("mma ablate: the k loop's fetch not found in the shader");
  const rest = loop.replace(block, '');
  const placed =
    where === 'early'
      ? rest.replace('let more = t + 1u < tiles;', `let more = t + 1u < tiles;${block}`)
      : where === 'mid'
        ? rest.replace(/\n {4}\{[\s\S]*?\n {4}\}/, `$&${block}`)
        : rest.replace(/\n {4}workgroupBarrier\(\);/, `${block}$&`);
  if (placed === loop) throw new Error(`mma ablate: the k loop's fetch is ${where} already`);
  return s.slice(0, at) + placed;
}

/** The k loop's (and the prologue's) stores of the shares in the order `order` gives them from A's and B's (and whether A's came first). */
function reorderStores(s: string, order: (as: string[], bs: string[], aFirst: boolean) => string[]): string {
  const isA = (l: string) => l.trimStart().startsWith('store_a');
  return reorderRuns(s, 'store_[ab]\\((?:a_slot\\(tid|tid)', (lines) => order(lines.filter(isA), lines.filter((l) => !isA(l)), isA(lines[0] ?? '')));
}

/** The k loop's fetch lists with B's fetches before A's (both branches). */
function fetchBFirst(s: string): string {
  return edit(s, /((?:\n\s*na\d+ = fetch_a(?:_in)?\([^\n]*;)+)((?:\n\s*nb\d+ = fetch_b(?:_in)?\([^\n]*;)+)/g, '$2$1');
}

/** Every multiply step's left matrices loaded one at a time, each just before its row of products (4 + 1 live operands, not 4 + 4). */
function lazyLeft(s: string): string {
  return edit(s, /((?:\n\s*let l\d+ = subgroupMatrixLoad[^\n]*;)+)((?:\n\s*let r\d+ = subgroupMatrixLoad[^\n]*;)+)((?:\n\s*acc\d+_\d+ = [^\n]*;)+)/g, (_m, ls: string, rs: string, accs: string) => {
    const left = new Map([...ls.matchAll(/\n\s*let (l\d+) = [^\n]*;/g)].map((x) => [x[1], x[0]]));
    let out = rs;
    for (const line of accs.matchAll(/\n\s*acc\d+_\d+ = subgroupMatrixMultiplyAccumulate\((l\d+)[^\n]*;/g)) {
      const l = left.get(line[1]);
      if (l) {
        out += l;
        left.delete(line[1]);
      }
      out += line[0];
    }
    return out;
  });
}

/**
 * The k loop's (and the prologue's) stores of A's shares, and of a dense B's, written out in main
 * with every index a chain of lets from tid and constants: bounded by Tint's range analysis (on by
 * default in this Dawn) as the engine's store helpers are, in another shape (dense 4096^3 155 against
 * 154 TFLOP/s for the helpers; NF4 backward 137 against 205: bench/tensor-core-notes.md, session 18).
 */
function inlineStores(s: string): string {
  const put = (tile: string, v: string, rot: string) =>
    [
      `let sw = ((tid % 32u) >> ${rot}) % 2u;`,
      `let w = select(${v}, ${v}.zwxy, sw == 1u);`,
      'let o0 = o + 2u * sw;',
      'let o1 = o + 2u - 2u * sw;',
      `${tile}[blk][o0] = w.x; ${tile}[blk][o0 + 1u] = w.y; ${tile}[blk][o1] = w.z; ${tile}[blk][o1 + 1u] = w.w;`,
    ].join(' ');
  let out = edit(s, /store_a\(a_slot\(tid, (\d+)u\), (na\d+), lane\);/g, (_m, i: string, v: string) =>
    [
      `{ let f = tid + ${i}u * THREADS; let q = f / (BK / 4u); let w_ = q / (32u / (BK / 4u));`,
      'let row = (w_ / A_SPREAD) * (32u / (BK / 4u)) * A_SPREAD + (q % (32u / (BK / 4u))) * A_SPREAD + w_ % A_SPREAD;',
      'let blk = row / (TM * 16u);',
      'let o = (row % (TM * 16u)) * SA + (f % (BK / 4u)) * 4u;',
      put('tile_a', v, 'A_ROT'),
      '}',
    ].join(' '),
  );
  const v = variantOf(s);
  if (v.kind === 'dense') {
    // the position as the engine's bounded store_b takes it (its own f and sw left out)
    const index = bStoreIndex(v, true).split('\n').slice(1, 3).map((l) => l.trim());
    out = edit(out, /store_b\(tid, (\d+)u, (nb\d+)\);/g, (_m, i: string, v: string) =>
      [`{ let f = tid + ${i}u * THREADS;`, ...index, put('tile_b', v, 'B_ROT'), '}'].join(' '),
    );
  }
  return out;
}

/**
 * Shares of eight in spread rows (the engine's x·Bᵀ: spreadRows) take two passes an 8-byte store; with
 * lanes whose bit 2 is set storing their share's second half first, one (the least). Timed in session
 * 23: x·Bᵀ 239 -> 214 TFLOP/s (the run-time offsets and selects cost more than the passes saved).
 */
function swapHalves(s: string): string {
  if (!s.includes('fn spread_rows(')) throw new Error('mma ablate: swap-halves is for shares in spread rows (spreadRows)');
  let out = s;
  for (const [tile, lane] of [['tile_a', 'lane'], ['tile_b', '(tid % 32u)']]) {
    const stores = new RegExp(`\\n(\\s*)${tile}\\[blk\\]\\[o\\] = lo\\.x;(?:\\n\\s*${tile}\\[blk\\]\\[o \\+ \\du\\] = (?:lo|hi)\\.[xyzw];){7}`);
    out = edit(out, stores, (_m, sp: string) =>
      [
        '',
        `let sw8 = (${lane} >> 2u) % 2u;`, // % bounds it for Tint's range analysis (with & the stores were clamped, and 16-bit)
        'let first = select(lo, hi, sw8 == 1u);',
        'let second = select(hi, lo, sw8 == 1u);',
        'let o0 = o + 4u * sw8;',
        'let o1 = o + 4u - 4u * sw8;',
        ...['x', 'y', 'z', 'w'].map((c, e) => `${tile}[blk][o0${e ? ` + ${e}u` : ''}] = first.${c};`),
        ...['x', 'y', 'z', 'w'].map((c, e) => `${tile}[blk][o1${e ? ` + ${e}u` : ''}] = second.${c};`),
      ].join(`\n${sp}`),
    );
  }
  return out;
}

/** store_a's and store_b's index lines in the clamped form (aStoreIndex(false), bStoreIndex(v, false)). */
function clampedStores(s: string): string {
  const v = variantOf(s);
  return editText(editText(s, aStoreIndex(true), aStoreIndex(false)), bStoreIndex(v, true), bStoreIndex(v, false));
}

/**
 * The k loop's matrix loads of one operand read straight from device memory (subgroupMatrixLoad on the
 * f16 rows of a, or of a dense b with transB, at run-time offsets: robustness clamps them), its shares
 * neither fetched nor staged. `ahead`: each matrix loaded one k step early into a variable (registers
 * across the loop's back edge), as a cp.async pipeline would have it in workgroup memory. Timing only:
 * interior blocks' values (edges read past rows and k).
 */
function directOperand(s: string, which: 'a' | 'b', ahead: boolean): string {
  const at = kLoopAt(s);
  const v = variantOf(s);
  if (which === 'b' && !(v.kind === 'dense' && v.transB)) throw new Error('mma ablate: b-direct needs a dense b with transB');
  const stride = Number((which === 'a' ? /const SA = (\d+)u;/ : /const SB = (\d+)u;/).exec(s)![1]);
  const [kind, tile, name, first, layout] =
    which === 'a' ? ['left', '&tile_a\\[sgr\\]', 'l', '(row0 + sr', 'row_major'] : ['right', '&tile_b\\[sgc\\]', 'r', '(col0 + sc', 'col_major'];
  const load = new RegExp(`let (${name}\\d+) = subgroupMatrixLoad<subgroup_matrix_${kind}<f16, 16, 16>, ${layout}>\\(${tile}, (\\d+)u, S[AB]\\);`, 'g');
  const from = (off: number, t: string) =>
    `subgroupMatrixLoad<subgroup_matrix_${kind}<f16, 16, 16>, ${layout}>(&${which}, ${first} + ${Math.floor(off / (16 * stride)) * 16}u) * p.ki + ${t} * BK + ${off % (16 * stride)}u, p.ki)`;
  let loop = s.slice(at);
  const vars: string[] = [];
  loop = edit(loop, load, (_m, v: string, off: string) => {
    if (!ahead) return `let ${v} = ${from(Number(off), 't')};`;
    const pv = `p${v}_${vars.length}`;
    vars.push(`var ${pv} = ${from(Number(off), '0u')};`);
    return `let ${v} = ${pv};\n      ${pv} = ${from(Number(off), '(t + 1u)')};`;
  });
  // the operand's shares: neither fetched (the k loop's fetch lists) nor stored
  loop = edit(loop, new RegExp(`\\n\\s*n${which}\\d+ = fetch_${which}(?:_in)?\\([^\\n]*;`, 'g'), '');
  loop = edit(loop, which === 'a' ? /\n\s*store_a\(a_slot\(tid, \d+u\), na\d+, lane\);/g : /\n\s*store_b\(tid, \d+u, nb\d+\);/g, '');
  // The operand's binding as f16 elements (an entry point may not use two variables of one binding);
  // its vector fetches (the prologue's) then read four elements.
  let head = s.slice(0, at);
  const vec = `var<storage, read> ${which}: array<vec4<f16>>;`;
  if (head.includes(vec)) {
    const e = (i: number) => `${which}[r * width + c${i ? ` + ${i}u` : ''}]`;
    head = editText(editText(head, vec, `var<storage, read> ${which}: array<f16>;`), `${which}[(r * width + c) / 4u]`, `vec4<f16>(${[0, 1, 2, 3].map(e).join(', ')})`);
  }
  return head + (ahead ? `${vars.join('\n  ')}\n  ` : '') + loop;
}

/**
 * The k loop's fetches two k steps ahead: a second set of share registers (ma, mb) takes the tiles of
 * step t + 2 while the first's (na, nb: step t + 1) are stored, so a fetch has a whole k step to land
 * before its stores wait on it. `unrolled`: the loop written out twice per trip with the sets' roles
 * swapped; else one body and the second set moved into the first after each step.
 */
function fetchTwoAhead(s: string, unrolled: boolean): string {
  const at = kLoopAt(s);
  let head = s.slice(0, at);
  const loopAndRest = s.slice(at);
  const close = '\n    workgroupBarrier();\n  }\n'; // the loop's last barrier and its end
  const end = loopAndRest.indexOf(close) + close.length;
  if (end < close.length) throw new Error("mma ablate: the k loop's end not found in the shader");
  const header = kLoopHeader(s);
  const body = loopAndRest.slice(header.length, end - '  }\n'.length);
  const rest = loopAndRest.slice(end);
  const names = [...head.matchAll(/\bvar (n[ab]\d+): /g)].map((m) => m[1]);
  if (!names.length) throw new Error('mma ablate: the share registers not found in the shader');
  const other = (x: string) => x.replace(/\bn([ab]\d+)\b/g, 'm$1');
  // declarations of the second set, and the prologue's fetch of step 1 after its stores of step 0
  head = edit(head, /((?:\n\s*var n[ab]\d+: [^;]*;)+)/, (m) => m + other(m));
  const prologue = /\n {2}\{\n {4}let k0 = 0u;[\s\S]*?\n {2}\}/.exec(head)?.[0];
  if (!prologue) throw new Error("mma ablate: the prologue's fetch not found in the shader");
  head = edit(head, /\n {2}workgroupBarrier\(\);\n(\s*\/\/[^\n]*\n)*\s*$/, (m) => `\n  if (1u < tiles)${prologue.replace('\n  {', ' {').replace('let k0 = 0u;', 'let k0 = BK;')}${m}`);
  // the loop's fetch: step t + 2 into the second set
  const fetch = /\n {4}if \(more\) \{\n\s*let k0 = \(t \+ 1u\) \* BK;[\s\S]*?\n {4}\}/;
  const ahead = edit(body, fetch, (m) => other(m).replace('if (more) {', 'if (t + 2u < tiles) {').replace('(t + 1u) * BK', '(t + 2u) * BK'));
  if (!unrolled) {
    const moves = names.map((n) => `${n} = ${other(n)};`).join(' ');
    return `${head}${header}${ahead}    ${moves}\n  }\n${rest}`;
  }
  // odd steps: t1 = t + 1, the sets' roles swapped
  const swap = (x: string) => x.replace(/\b([nm])([ab]\d+)\b/g, (_m, set: string, r: string) => (set === 'n' ? 'm' : 'n') + r);
  const odd = swap(ahead).replace('let more = t + 1u < tiles;', 'let more = t1 + 1u < tiles;').replaceAll('(t + 2u)', '(t1 + 2u)').replace('if (t + 2u < tiles)', 'if (t1 + 2u < tiles)');
  return `${head}for (var t = 0u; t < tiles; t += 2u) {${ahead}    if (t + 1u < tiles) {\n    let t1 = t + 1u;${odd}    }\n  }\n${rest}`;
}

/** One tile's interior fetches halved: its shares past the first half copy the first half's values
 * (half the device loads and bytes: a bound on what wider loads could save). */
function halfFetch(s: string, which: 'a' | 'b'): string {
  const n = new Set([...s.matchAll(new RegExp(`\\bn${which}(\\d+) = fetch_${which}_in\\(`, 'g'))].map((m) => Number(m[1]))).size;
  return edit(s, new RegExp(`\\bn${which}(\\d+) = fetch_${which}_in\\([^\\n]*;`, 'g'), (m, i: string) => (Number(i) < n / 2 ? m : `n${which}${i} = n${which}${Number(i) - n / 2};`));
}

/**
 * One tile's memory declared as an untyped workgroup buffer (WGSL's buffer_view) read by the matrix
 * loads through an f16 view, and each share stored whole through a vec2<u32> view: one 8-byte store
 * in place of four f16 ones (Tint lowers a buffer to an array of its smallest access, here the
 * matrix loads' f16: whether the driver merges the four 16-bit stores back is what this times).
 */
function viewStores(s: string, which: 'a' | 'b'): string {
  const num = (name: string) => Number(new RegExp(`const ${name} = (\\d+)u;`).exec(s)![1]);
  const [type, bytes, block] =
    which === 'a'
      ? ['array<array<f16, TM * 16u * SA>, BM / (TM * 16u)>', num('BM') * num('SA') * 2, 'TM * 16u * SA']
      : ['array<array<f16, B_SUB>, SGC>', num('B_SUB') * num('SGC') * 2, 'B_SUB'];
  if (which === 'b' && variantOf(s).kind !== 'dense') throw new Error('mma ablate: view-b-stores needs a dense b');
  let out = editText(s, `var<workgroup> tile_${which}: ${type};`, `var<workgroup> tile_${which}_mem: buffer<${bytes}>;`);
  out = edit(out, /(\nfn main\([^\n]*\{)/, `$1\n  let tile_${which} = bufferView<${type}>(&tile_${which}_mem, 0u);`);
  return edit(
    out,
    new RegExp(`\\n {2}tile_${which}\\[blk\\]\\[o0\\] = w\\.x;\\n {2}tile_${which}\\[blk\\]\\[o0 \\+ 1u\\] = w\\.y;\\n {2}tile_${which}\\[blk\\]\\[o1\\] = w\\.z;\\n {2}tile_${which}\\[blk\\]\\[o1 \\+ 1u\\] = w\\.w;`),
    `\n  let words = bufferView<array<vec2<u32>, ${bytes / 8}>>(&tile_${which}_mem, 0u);\n  words[(blk * (${block}) + o) / 4u] = bitcast<vec2<u32>>(v);`,
  );
}

export const EDITS: Record<string, (s: string) => string> = {
  'one-product': (s) => edit(s, /\n\s*acc(?!0_0 )\d+_\d+ = subgroupMatrixMultiplyAccumulate\([^;]*;/g, ''),
  'no-store': (s) => edit(s, /if \(more\) \{(\s*)store_(a|b)/, 'if (more && p.accumulate == 7u) {$1store_$2'),
  'no-fetch': (s) => noFetchB(noFetchA(s)),
  'no-a-fetch': (s) => noFetchA(s),
  'no-b-fetch': (s) => noFetchB(s),
  'no-a-store': (s) => edit(s, /(store_a\(a_slot\(tid, \d+u\), na\d+, lane\);)/g, 'if (p.accumulate == 7u) { $1 }'),
  'no-b-store': (s) => edit(s, /(store_b\(tid, \d+u, nb\d+\);)/g, 'if (p.accumulate == 7u) { $1 }'),
  'no-barrier': (s) => edit(s, /\n {4}workgroupBarrier\(\);/g, ''),
  'no-output': (s) => edit(s, /if \(row < p\.m && col < p\.nc\) \{ store_out/g, 'if (row < p.m && col < p.nc && p.accumulate == 7u) { store_out'),
  'epilogue-no-barrier': (s) =>
    edit(s, /(subgroupMatrixStore<row_major>\(&stage[^;]*;|write_stage4?\([^;]*;)(\s*\})?\s*workgroupBarrier\(\);/g, '$1$2'),
  ...Object.fromEntries([1, 2, 4].map((g) => [`order-g${g}`, (s: string) => groupOrder(s, g)])),
  'fetch-b-first': fetchBFirst,
  'inline-stores': inlineStores,
  'clamped-stores': clampedStores,
  'swap-halves': swapHalves,
  'rows-in-order': (s) => edit(s, /let f = spread_rows\(tid \+ i \* THREADS\);/g, 'let f = tid + i * THREADS;'),
  'bounded-epilogue': (s) => {
    let out = editText(
      s,
      '    let s = at + idx;\n    let v = vec4<f32>(stage[sg][s], stage[sg][s + 1u], stage[sg][s + 2u], stage[sg][s + 3u]);',
      '    let s = ((at + idx) / 4u % (64u * STAGE)) * 4u;\n    let v = vec4<f32>(stage[sg % (THREADS / 32u)][s], stage[sg % (THREADS / 32u)][s + 1u], stage[sg % (THREADS / 32u)][s + 2u], stage[sg % (THREADS / 32u)][s + 3u]);',
    );
    out = editText(out, 'stage[sg][at + idx]', 'stage[sg % (THREADS / 32u)][(at + idx) % (256u * STAGE)]');
    return out.includes('a_scale[rb]') ? editText(out, 'a_scale[rb]', 'a_scale[rb % BM]') : out;
  },
  // The k loop bounded by a constant, left by a break at the run-time count: Tint then sees it finite
  // and does not add its 64-bit iteration guard (a vec2<u32> counter checked every iteration).
  'const-loop': (s) => kLoopAs(s, K_LOOP_CONST),
  'tiles-loop': (s) => kLoopAs(s, K_LOOP),
  // The k loop counting down to 0 (or an i32 up from -tiles to 0): finite by Tint's analysis (a
  // constant bound) with its trip count still plain for the driver.
  'down-loop': (s) => kLoopAs(s, 'for (var tt = tiles; tt > 0u; tt--) {\n    let t = tiles - tt;'),
  'neg-loop': (s) => kLoopAs(s, 'for (var ti = -i32(tiles); ti < 0i; ti++) {\n    let t = u32(ti + i32(tiles));'),
  'stores-swapped': (s) => reorderStores(s, (as, bs, aFirst) => (aFirst ? [...bs, ...as] : [...as, ...bs])),
  'lazy-left': lazyLeft,
  'stores-interleaved': (s) => reorderStores(s, (as, bs) => [...as.flatMap((a, i) => [a, ...(bs[i] ? [bs[i]] : [])]), ...bs.slice(as.length)]),
  'stores-reversed': (s) => reorderStores(s, (as, bs) => [...as, ...bs].reverse()),
  'stores-b-mid': (s) => reorderStores(s, (as, bs) => [...as.slice(0, as.length / 2), ...bs, ...as.slice(as.length / 2)]),
  'a-direct': (s) => directOperand(s, 'a', false),
  'a-direct-ahead': (s) => directOperand(s, 'a', true),
  'b-direct': (s) => directOperand(s, 'b', false),
  'b-direct-ahead': (s) => directOperand(s, 'b', true),
  'fetch-ahead2': (s) => fetchTwoAhead(s, false),
  'fetch-ahead2-unrolled': (s) => fetchTwoAhead(s, true),
  'half-a-fetch': (s) => halfFetch(s, 'a'),
  'half-b-fetch': (s) => halfFetch(s, 'b'),
  // every other element of a share stored (pairs that the driver could merge into one 4-byte store, if it does)
  'half-stores': (s) => edit(s, /\n\s*tile_([ab])\[blk\]\[o([01]) \+ 1u\] = w\.[yw];/g, ''),
  'view-a-stores': (s) => viewStores(s, 'a'),
  'view-b-stores': (s) => viewStores(s, 'b'),
  'fetch-early': (s) => placeFetch(s, 'early'),
  'fetch-mid': (s) => placeFetch(s, 'mid'),
  'fetch-late': (s) => placeFetch(s, 'late'),
  'element-order': (s) => edit(s, /const ([AB])_ROT = \du;/g, 'const $1_ROT = 5u;').replace(/const A_SPREAD = \du;/, 'const A_SPREAD = 1u;'),
  // (no throw: a tile already in element order times as the base)
  'a-element-order': (s) => s.replace(/const A_ROT = \du;/, 'const A_ROT = 5u;').replace(/const A_SPREAD = \du;/, 'const A_SPREAD = 1u;'),
  'b-element-order': (s) => s.replace(/const B_ROT = \du;/, 'const B_ROT = 5u;'),
  // B's matrix loads in the other layout (the same 16 rows of the tile, read transposed: the cost of the layout alone)
  'b-other-layout': (s) => {
    const out = s.replace(/(subgroup_matrix_right<f16, 16, 16>, )(row|col)(_major>)/g, (_m, a: string, l: string, b: string) => `${a}${l === 'row' ? 'col' : 'row'}${b}`);
    if (out === s) throw new Error('mma ablate: no right-matrix loads in the shader');
    return out;
  },
};

/** Tilings timed here and not in MMA_TILINGS (no engine product ran faster on them in session 21):
 * k steps of 48 at 256x128 (the epilogue's stage in two turns: stageTurns), 183-187 TFLOP/s at
 * 4096^3 against 200-210; 16 subgroups of 4x2 or 2x4 result matrices, 177-219 against 199-250. */
export const TRIAL_TILINGS: Record<string, MmaTiling> = {
  '256x128-w8-k48': { tm: 4, tn: 4, sgr: 4, sgc: 2, bk: 48 },
  '256x128-w16-k32': { tm: 4, tn: 2, sgr: 4, sgc: 4, bk: 32 },
  '256x128-w16t-k32': { tm: 2, tn: 4, sgr: 8, sgc: 2, bk: 32 },
  '128x256-w16-k32': { tm: 2, tn: 4, sgr: 4, sgc: 4, bk: 32 },
  // Two workgroups an SM: the H200's driver gives an SM's workgroups ~48 KiB in all (the residency
  // probe). x·Bᵀ's at 24 KiB (20 of tiles, 4 of stage) ran one an SM (141 TFLOP/s, as the engine's
  // 28 KiB form); in 23 (22: the stage in two turns) 233; a·B's (23 KiB) 147 -> 240.
  '128x128-w4-k32-half': { tm: 4, tn: 4, sgr: 2, sgc: 2, bk: 32, memory: 23 * 1024 },
};

/** Edits that only an NF4 B source (here: with an f32 out) has something to take out of. */
export const NF4_EDITS: Record<string, (s: string) => string> = {
  'direct-out': (s) =>
    edit(
      s,
      /subgroupMatrixStore<row_major>\(&stage\[sg\], \d+u, (acc\d+_\d+), 16u\);\s*workgroupBarrier\(\);\s*write_stage4?\(sg, \d+u, lane, row0, (sr \+ \d+u), (col0 \+ sc \+ \d+u)\);\s*workgroupBarrier\(\);/g,
      'subgroupMatrixStore<row_major>(&out, (row0 + $2) * p.nc + $3, $1, p.nc);',
      // bias's binding stays in the layout the engine's bind group has
    ).replace(/(subgroupMatrixStore<row_major>\(&out, [^\n]*\n)(?![\s\S]*subgroupMatrixStore<row_major>\(&out)/, '$1  if (p.accumulate == 7u) { store_out(0u, 0u, 0u, bias[0]); }\n'),
  'no-absmax': (s) => edit(s, /(fn fetch_b_in[\s\S]*?)bitcast<u32>\(absmax\[e0 >> p\.bs_shift\]\)/, '$10x3c000000u'),
  'b-tiled-fetch': (s) => edit(s, /\(col0 \+ s\.x\) \* p\.wc \+ k0 \+ s\.y, TRANS_B\)/, 'k0 * p.nc + (col0 + s.x) * BK + s.y, TRANS_B)'),
  'no-table': (s) => edit(s, /subgroupShuffle\(nf4_code_lane, \(v\.x >> nf4_shift\((\w)\)\) & 15u\)/, 'f32((v.x >> nf4_shift($1)) & 15u)'),
};

/** The variant name (alone or among edits joined by '+') for a dense b's product with shares of four. */
const NARROW = 'narrow';

/** `only`: the products and variants to time (`--ablate nf4-forward,base,direct-out`; the base always, all where empty; `a+b` composes edits). */
export async function benchMmaAblate(gpu: Gpu, kernels: Kernels, repeats: number, only: string[] = []): Promise<MmaAblateResult[]> {
  const whats = ['dense-f16', 'dense-f16-n', 'dense-f32a', 'dense-lmhead', 'dense-lmhead-dy', 'nf4-forward', 'nf4-backward', 'nf4-forward-down', 'nf4-forward-kv'];
  const wanted = (names: string[], name: string) => !names.some((n) => only.includes(n)) || only.includes(name);
  const results: MmaAblateResult[] = [];
  if (!gpu.info.mmaF16) {
    console.log('mma ablate: this device has no f16 16x16x16 subgroup matrices; skipped');
    return results;
  }
  const run = async (what: MmaAblateResult['what'], shape: number[], inputs: (zeros: boolean) => { a: Tensor[]; b: MmaOperand[]; out: Tensor; s: MmaMatmulShape | MmaMatmulShape[]; free: () => void }) => {
    if (!wanted(whats, what)) return;
    const edits = what.startsWith('dense') ? EDITS : { ...EDITS, ...NF4_EDITS };
    const names = ['zeros', ...Object.keys(edits)];
    for (const zeros of [false, true]) {
      if (zeros && !wanted(names, 'zeros')) continue;
      const { a, b, out, s, free } = inputs(zeros);
      // Names joined by '+' in `only` compose their edits, left to right; `narrow` among them (or alone)
      // takes a dense b's product with shares of four (wideShares' other choice).
      const known = (e: string) => e in edits || e === NARROW;
      const combos = only.filter((n) => (n.includes('+') || n === NARROW) && n.split('+').every(known));
      const compose = (es: string[]) => (es.length ? (x: string) => es.reduce((y, e) => edits[e](y), x) : undefined);
      type Variant = [name: string, source: ((s: string) => string) | undefined, tiling?: MmaTiling, wide?: boolean];
      const parse = (name: string, es: string[], tiling?: MmaTiling): Variant => [name, compose(es.filter((e) => e !== NARROW)), tiling, es.includes(NARROW) ? false : undefined];
      // `tiling=NAME` (or `tiling=NAME+edit...`): the kernel on another tiling (MMA_TILINGS, TRIAL_TILINGS).
      const tilingRuns = only.filter((n) => n.startsWith('tiling=') && n.split('+').slice(1).every(known));
      const variants: Variant[] = zeros
        ? [['zeros', undefined]]
        : [
            ['base', undefined],
            ...Object.entries(edits).filter(([name]) => (combos.length || tilingRuns.length ? only.includes(name) : wanted(names, name))),
            ...combos.map((c) => parse(c, c.split('+'))),
            ...tilingRuns.map((c) => {
              const [tiling, ...es] = c.slice('tiling='.length).split('+');
              const t = MMA_TILINGS[tiling] ?? TRIAL_TILINGS[tiling];
              if (!t) throw new Error(`mma ablate: no tiling ${tiling} (${[...Object.keys(MMA_TILINGS), ...Object.keys(TRIAL_TILINGS)].join(', ')})`);
              return parse(c, es, t);
            }),
          ];
      for (const [variant, source, tiling, wide] of variants) {
        if (wide === false && !what.startsWith('dense')) continue;
        const force = { ...(source ? { edit: { tag: variant, source } } : {}), ...(tiling ? { tiling } : {}), ...(wide === undefined ? {} : { wide }) };
        const encode = (pass: GPUComputePassEncoder, i: number) => encodeMmaMatmul(kernels, pass, a[i % a.length], b[i % b.length], out, Array.isArray(s) ? s[i % s.length] : s, force);
        // An edit that does not apply to this kernel (its fetch already where the edit puts it) throws
        // while the first pass is recorded: reported and skipped, the other variants still timed.
        // An edit whose shader does not compile is reported likewise (its passes would time as nothing).
        let seconds: number;
        gpu.device.pushErrorScope('validation');
        try {
          seconds = await timePass(gpu, repeats, encode);
        } catch (e) {
          await gpu.device.popErrorScope();
          console.log(`mma ablate ${what} ${variant}: skipped (${(e as Error).message})`);
          continue;
        }
        const invalid = await gpu.device.popErrorScope();
        if (invalid) {
          console.log(`mma ablate ${what} ${variant}: skipped (invalid: ${invalid.message.split('\n')[0]})`);
          continue;
        }
        const [m, k, n] = shape;
        const r: MmaAblateResult = { op: 'mma-ablate', what, variant, shape, ms: seconds * 1e3, tflops: (2 * m * k * n) / seconds / 1e12 };
        results.push(r);
        console.log(`mma ablate ${what} ${variant} [${shape.join('x')}]: ${r.ms.toFixed(3)} ms, ${r.tflops.toPrecision(3)} TFLOP/s`);
      }
      free();
    }
  };

  // a · Bᵀ (B [n, k]: the engine's x·Wᵀ, the figure the notes quote) and a · B (B [k, n]: the backward's layout).
  const n = 4096;
  for (const what of ['dense-f16', 'dense-f16-n'] as const) {
    await run(what, [n, n, n], (zeros) => {
      const copies = rotationCopies(2 * n * n * 2);
      const make = (seed: number, label: string) => (zeros ? createTensor(kernels.device, [n, n], 'f16', label) : randomTensor(kernels, [n, n], 'f16', 1, seed, label));
      const a = Array.from({ length: copies }, (_, i) => make(10 + i, 'bench.ablate.a'));
      const bs = Array.from({ length: copies }, (_, i) => make(20 + i, 'bench.ablate.b'));
      const out = createTensor(kernels.device, [n, n], 'f16', 'bench.ablate.c');
      return { a, b: bs.map((b) => ({ kind: 'dense' as const, b })), out, s: { m: n, nc: n, ki: n, transB: what === 'dense-f16' }, free: () => [...a, ...bs, out].forEach((t) => t.buffer.destroy()) };
    });
  }

  // f32 rows of a converted to scaled f16 rows (timed apart, as the engine's f16-rows), f16 B, f32 out:
  // the variants the engine runs for the lm_head. At 4096^3 (dense-f32a: a · Bᵀ, a's rows rotated like
  // B), the 8B lm_head's x·Eᵀ as training runs it (dense-lmhead: 2048 rows of h, one copy as in the
  // step's 16 chunks, against one 8192-row chunk of E) and its dh += dlogits · E (dense-lmhead-dy: E's
  // chunk as b [8192, 4096], the chunk's 2048 x 8192 dlogits one copy).
  const scaledRows = async (what: 'dense-f32a' | 'dense-lmhead' | 'dense-lmhead-dy', [rows, ki, nc]: number[], aCopies: (bytes: number) => number) => {
    const transB = what !== 'dense-lmhead-dy';
    await run(what, [rows, ki, nc], (zeros) => {
      const hs = Array.from({ length: aCopies(rows * ki * 2) }, (_, i) =>
        zeros ? createTensor(kernels.device, [rows, ki], 'f32', 'bench.ablate.h') : randomTensor(kernels, [rows, ki], 'f32', 1, 30 + i, 'bench.ablate.h'),
      );
      const f16 = hs.map((h) => {
        let r: F16Rows | undefined;
        submitPass(kernels, (pass) => (r = encodeMmaRows(kernels, pass, h, rows, ki)));
        return r!;
      });
      const eShape = transB ? [nc, ki] : [ki, nc];
      const es = Array.from({ length: rotationCopies(nc * ki * 2) }, (_, i) =>
        zeros ? createTensor(kernels.device, eShape, 'f16', 'bench.ablate.e') : randomTensor(kernels, eShape, 'f16', 1, 40 + i, 'bench.ablate.e'),
      );
      const out = createTensor(kernels.device, [rows, nc], 'f32', 'bench.ablate.out');
      // The shape names a's rows per product: each copy of h brings its own.
      const shapes: MmaMatmulShape[] = f16.map((r) => ({ m: rows, nc, ki, transB, rows: r, accumulate: !transB }));
      return { a: hs, b: es.map((b) => ({ kind: 'dense' as const, b })), out, s: shapes, free: () => [...hs, ...es, out].forEach((t) => t.buffer.destroy()) };
    });
  };
  await scaledRows('dense-f32a', [4096, 4096, 4096], rotationCopies);
  await scaledRows('dense-lmhead', [2048, 4096, 8192], () => 1);
  await scaledRows('dense-lmhead-dy', [2048, 8192, 4096], () => 1);

  // The MLP's up (x·Wᵀ into 14336 columns, 128 k steps a block), its backward (dy·W into 4096, 448
  // k steps) and the down's forward (x·Wᵀ into 4096, 448 k steps): the same FLOPs, so the two
  // forwards differ by what a block pays apart from its k steps. And the k (v) projection's forward
  // into f16 (4096 -> 1024: a grid small enough for the 128x128 tiling).
  const [tokens, wide] = [2048, 14336];
  for (const what of ['nf4-forward', 'nf4-backward', 'nf4-forward-down', 'nf4-forward-kv'] as const) {
    const forward = what !== 'nf4-backward';
    const [outDim, inp] = what === 'nf4-forward-down' ? [4096, wide] : what === 'nf4-forward-kv' ? [1024, 4096] : [wide, 4096];
    const yType = what === 'nf4-forward-kv' ? 'f16' : 'f32';
    await run(what, [tokens, forward ? inp : outDim, forward ? outDim : inp], (zeros) => {
      const copies = rotationCopies((outDim * inp) / 2);
      const ws = Array.from({ length: copies }, (_, i) => randomNf4(kernels, outDim, inp, 100 + i));
      if (zeros) for (const w of ws) kernels.device.queue.writeBuffer(w.absmax, 0, new Float32Array(w.absmax.size / 4));
      const x = zeros ? createTensor(kernels.device, [tokens, inp], 'f32', 'bench.ablate.x') : randomTensor(kernels, [tokens, inp], 'f32', 1, 7, 'bench.ablate.x');
      const y = zeros ? createTensor(kernels.device, [tokens, outDim], yType, 'bench.ablate.y') : randomTensor(kernels, [tokens, outDim], yType, 1, 8, 'bench.ablate.y');
      const free = () => {
        ws.forEach(destroyNf4);
        x.buffer.destroy();
        y.buffer.destroy();
      };
      const b = ws.map((w) => ({ kind: 'nf4' as const, w }));
      return forward
        ? { a: [x], b, out: y, s: { m: tokens, nc: outDim, ki: inp, transB: true }, free }
        : { a: [y], b, out: x, s: { m: tokens, nc: inp, ki: outDim, transB: false }, free };
    });
  }
  return results;
}
