// A prototype beside the engine's GEMM (src/engine/matmul-mma.ts) for the notes' question whether
// one workgroup a SM running its k loop in lockstep (every subgroup fetching, storing, waiting at
// the same barriers, then multiplying) is what holds the f16 GEMM under 300 TFLOP/s: a "ping-pong"
// of two groups of four subgroups in one 256x128 workgroup, each group owning 128 rows of the block
// and its own A tile, B's tile shared and kept twice (one per k step's parity). Between two barriers
// one group multiplies while the other stores its next tiles and fetches the ones after, and the
// roles swap at each barrier: the products of one group run beside the staging of the other, which
// the engine's loop (staging, then products, all subgroups at once) cannot do. B's tile for step j+1
// is stored half by each group while step j's is still being read from the other buffer.
//
// Interval 2j:   group 0 multiplies step j;  group 1 stores its A of step j and its half of B of
//                step j+1, then fetches its A of j+1 and its half of B of j+2.
// Interval 2j+1: group 0 stores its A and its half of B of step j+1, then fetches those of j+2;
//                group 1 multiplies step j.
// Workgroup memory: A 2 x 128 x 40 f16 (20 KB), B 2 buffers x 128 x 40 (20 KB), the epilogue's
// stage 1 KB a subgroup (8 KB): 48 KB, the limit. The loop runs two k steps a trip, so that every
// buffer index is a constant. Only a · Bᵀ, f16 in and out, every dimension a multiple of the block
// (the engine's interior blocks), shares of eight (one 16-byte load each) as the engine's.
import type { PrototypeLayout } from './mma-specialized.ts';

export interface PingPongLayout {
  /** The grid's x counts row blocks (the engine's x·Wᵀ) or column blocks. */
  rowsFastest: boolean;
  /** Each group's shares in registers of its own (else one set both groups' code shares: the
   * driver then moves them at the products' start, waiting there for the loads just issued). */
  ownShares: boolean;
  /** Fetch what a group stores in the same staging interval, just before (nothing held in registers
   * across the group's products: the other group's products cover the loads' wait), rather than an
   * interval ahead. */
  fetchInInterval?: boolean;
  /** Timing only (wrong results): leave out the staging, or the products, of the loop. */
  without?: 'staging' | 'products';
}

export const PING_PONG: Record<string, PingPongLayout> = {
  'pp-256x128-k32': { rowsFastest: true, ownShares: true },
  'pp-256x128-k32-cols': { rowsFastest: false, ownShares: true },
  'pp-256x128-k32-shared-shares': { rowsFastest: true, ownShares: false },
  'pp-256x128-k32-fetch-in-interval': { rowsFastest: true, ownShares: false, fetchInInterval: true },
  'pp-256x128-k32-no-staging': { rowsFastest: true, ownShares: true, without: 'staging' },
  'pp-256x128-k32-no-products': { rowsFastest: true, ownShares: true, without: 'products' },
};

const range = (k: number) => Array.from({ length: k }, (_, i) => i);
const SA = 40; // BK 32 + 8: a matrix load's 16 rows in different banks (the engine's padding)
const A_SHARES = 4; // 128 rows x 4 shares of eight / 128 invocations of a group
const B_SHARES = 2; // 64 rows (a group's half of B) x 4 / 128

/** The two 16-wide k steps of a subgroup's tm x 4 result matrices on A block `a` and B block `b` (WGSL expressions). */
function products(a: string, b: string, tm = 4): string {
  return range(2)
    .map((q) =>
      [
        ...range(tm).map((i) => `let l${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&tile_a[${a}], ${16 * i * SA + 16 * q}u, SA);`),
        ...range(4).map((j) => `let r${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&tile_b[${b}], ${16 * j * SA + 16 * q}u, SA);`),
        ...range(tm).flatMap((i) => range(4).map((j) => `acc${i}_${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, acc${i}_${j});`)),
      ].join('\n      '),
    )
    .map((x) => `{\n      ${x}\n    }`)
    .join('\n    ');
}

/** The shader's start: f16 shares of eight as four words in, f16 out, n^3. */
function header(n: number): string {
  return `enable f16;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
const SA = ${SA}u;
const K = ${n}u;
const NC = ${n}u;
const TILES = ${n / 32}u;
@group(0) @binding(0) var<storage, read> a: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f16>>;`;
}

/** A share v's eight elements into `tile`[blk][o ..] (o the function's let). */
function storeEight(tile: string, blk = 'blk'): string {
  return ['let lo = bitcast<vec4<f16>>(v.xy);', 'let hi = bitcast<vec4<f16>>(v.zw);', ...range(8).map((e) => `${tile}[${blk}][o${e ? ` + ${e}u` : ''}] = ${e < 4 ? 'lo' : 'hi'}.${'xyzw'[e % 4]};`)].join('\n  ');
}

/** The accumulators of a subgroup's tm x 4 result matrices. */
function accumulators(tm = 4): string {
  return range(tm)
    .flatMap((i) => range(4).map((j) => `var acc${i}_${j} = subgroup_matrix_result<f32, 16, 16>();`))
    .join('\n  ');
}

/**
 * The k loop, two steps a trip (kStep(step, parity): so that every buffer index is a constant), then
 * the epilogue: each subgroup's tm x 4 result matrices (rows from `r0`, columns from its 64-column
 * block) through its 1 KB of stage, to f16.
 */
function loopAndEpilogue(kStep: (step: string, parity: number) => string, r0: string, tm = 4): string {
  const epilogue = range(tm)
    .flatMap((i) =>
      range(4).map((j) =>
        [
          `subgroupMatrixStore<row_major>(&stage[sg], 0u, acc${i}_${j}, 16u);`,
          'workgroupBarrier();',
          'for (var e = 0u; e < 2u; e++) {',
          '    let idx = 4u * (lane + e * 32u);',
          `    let o = (r0 + ${16 * i}u + idx / 16u) * NC + c0 + ${16 * j}u + idx % 16u;`,
          '    out[o / 4u] = vec4<f16>(vec4<f32>(stage[sg][idx], stage[sg][idx + 1u], stage[sg][idx + 2u], stage[sg][idx + 3u]));',
          '  }',
          'workgroupBarrier();',
        ].join('\n  '),
      ),
    )
    .join('\n  ');
  return `for (var t = 0u; t < 0xffffffffu; t++) {
    if (t >= TILES / 2u) { break; }
    let j = 2u * t;
    ${kStep('j', 0)}
    ${kStep('j + 1u', 1)}
  }
  // the epilogue
  let r0 = ${r0};
  let c0 = col0 + wc * 64u;
  ${epilogue}`;
}

export function pingPongSource(l: PingPongLayout, n: number): string {
  if (n % 256 || n < 64) throw new Error('mma ping-pong: n must be a multiple of 256');
  // products of group g on B buffer `buf`: subgroup w of the group owns 64x64 (rows wr, columns wc)
  const multiply = (g: number, buf: number) => (l.without === 'products' ? '' : products(`${2 * g}u + wr`, `${2 * buf}u + wc`));
  // group g's shares of step `k` (an expression of k steps) into na* / nb* (or ma* / mb*)
  const fetch = (g: number, step: string, set: string) =>
    [
      ...range(A_SHARES).map((i) => `${set}a${i} = a[((row0 + ${128 * g}u + (lt + ${128 * i}u) / 4u) * K + (${step}) * 32u + ((lt + ${128 * i}u) % 4u) * 8u) / 8u];`),
      ...range(B_SHARES).map((i) => `${set}b${i} = b[((col0 + ${64 * g}u + (lt + ${128 * i}u) / 4u) * K + (${step}) * 32u + ((lt + ${128 * i}u) % 4u) * 8u) / 8u];`),
    ];
  const fetchA = (g: number, step: string, set: string) => fetch(g, step, set).slice(0, A_SHARES);
  const fetchB = (g: number, step: string, set: string) => fetch(g, step, set).slice(A_SHARES);
  const storeA = (g: number, set: string) => range(A_SHARES).map((i) => `store_a(${128 * g}u + (lt + ${128 * i}u) / 4u, (lt + ${128 * i}u) % 4u, ${set}a${i});`);
  const storeB = (g: number, buf: number, set: string) => range(B_SHARES).map((i) => `store_b(${2 * buf + g}u, (lt + ${128 * i}u) / 4u, (lt + ${128 * i}u) % 4u, ${set}b${i});`);
  const set = (g: number) => (l.ownShares && g === 1 ? 'm' : 'n');
  // The staging interval of group g in k step j = `step` (buffer of step + 1: 1 - parity):
  // group 1 stores A(j) and B half(j + 1), fetches A(j + 1), B half(j + 2);
  // group 0 stores A(j + 1) and B half(j + 1), fetches A(j + 2), B half(j + 2).
  // Without conditions (branches on the k step made the driver juggle the shares between registers):
  // past the last step a group fetches the last step again and stores into tiles nobody reads after.
  const staging = (g: number, step: string, parity: number) => {
    if (l.without === 'staging') return '';
    const aNext = g === 1 ? `${step} + 1u` : `${step} + 2u`;
    const last = (s: string) => `min(${s}, TILES - 1u)`;
    if (l.fetchInInterval) {
      const aNow = g === 1 ? step : `${step} + 1u`;
      return [...fetchA(g, last(aNow), set(g)), ...fetchB(g, last(`${step} + 1u`), set(g)), ...storeA(g, set(g)), ...storeB(g, 1 - parity, set(g))].join('\n      ');
    }
    return [...storeA(g, set(g)), ...storeB(g, 1 - parity, set(g)), ...fetchA(g, last(aNext), set(g)), ...fetchB(g, last(`${step} + 2u`), set(g))].join('\n      ');
  };
  // two intervals of k step `step` (parity: its B buffer)
  const kStep = (step: string, parity: number) => `// k step ${step}: group 0 multiplies, group 1 stages
    if (g == 0u) {
    ${multiply(0, parity)}
    } else {
      ${staging(1, step, parity)}
    }
    workgroupBarrier();
    // group 1 multiplies, group 0 stages
    if (g == 0u) {
      ${staging(0, step, parity)}
    } else {
    ${multiply(1, parity)}
    }
    workgroupBarrier();`;
  const sets = l.ownShares ? ['n', 'm'] : ['n'];
  return `${header(n)}
// A: 64-row blocks (2 a group); B: 64-row blocks of columns, buffer * 2 + column block
var<workgroup> tile_a: array<array<f16, 64u * SA>, 4u>;
var<workgroup> tile_b: array<array<f16, 64u * SA>, 4u>;
var<workgroup> stage: array<array<f32, 256u>, 8u>;

/** Share (row, q) of the A tile: rows of the block 0 .. 255, eight k from q * 8. */
fn store_a(row: u32, q: u32, v: vec4<u32>) {
  let blk = (row / 64u) % 4u;
  let o = (row % 64u) * SA + (q % 4u) * 8u;
  ${storeEight('tile_a')}
}

/** Share (row, q) of B's block blk (buffer * 2 + column block): its rows 0 .. 63. */
fn store_b(blk: u32, row: u32, q: u32, v: vec4<u32>) {
  let o = (row % 64u) * SA + (q % 4u) * 8u;
  ${storeEight('tile_b', 'blk % 4u')}
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let row0 = wg.${l.rowsFastest ? 'x' : 'y'} * 256u;
  let col0 = wg.${l.rowsFastest ? 'y' : 'x'} * 128u;
  let sg = tid / 32u;
  let lane = tid % 32u;
  let g = sg / 4u; // the group
  let lt = tid % 128u; // the invocation in its group
  let wr = (sg % 4u) / 2u; // the subgroup's 64-row block in its group
  let wc = sg % 2u; // and 64-column block
  ${accumulators()}
  ${sets.map((s) => [...range(A_SHARES).map((i) => `var ${s}a${i}: vec4<u32>;`), ...range(B_SHARES).map((i) => `var ${s}b${i}: vec4<u32>;`)].join(' ')).join('\n  ')}
  // before the loop: B of step 0 whole; group 0 its A of step 0; then the shares each group stores first
  if (g == 0u) {
    ${[...fetch(0, '0u', 'n'), ...storeA(0, 'n'), ...storeB(0, 0, 'n'), ...(l.fetchInInterval ? [] : fetch(0, '1u', 'n'))].join('\n    ')}
  } else {
    ${[...fetchB(1, '0u', set(1)), ...storeB(1, 0, set(1)), ...(l.fetchInInterval ? [] : [...fetchA(1, '0u', set(1)), ...fetchB(1, '1u', set(1))])].join('\n    ')}
  }
  workgroupBarrier();
  ${loopAndEpilogue(kStep, 'row0 + g * 128u + wr * 64u')}
}`;
}

/** The ping-pong layouts as the prototype bench's entries. */
export const PING_PONG_PROTOTYPES: PrototypeLayout[] = Object.entries(PING_PONG).map(([name, l]) => ({
  name,
  source: (n) => pingPongSource(l, n),
  grid: (n) => (l.rowsFastest ? [n / 256, n / 128] : [n / 128, n / 256]),
}));

/**
 * The other form of that overlap: a 128x128 workgroup of four subgroups (2 x 2, each 4 x 4 result
 * matrices, as the engine's) with its tiles twice, one barrier a k step: every subgroup stores the
 * next step's shares into the other buffer, fetches the step after, then multiplies this step's
 * (the same code for all: no branch for the driver to move registers across). 40 KB of tiles and
 * 4 KB of stage leave room for two workgroups a SM (128 invocations x ~240 registers each), whose
 * barriers are their own. Session 8 timed a double buffer at 128x128 when the kernel ran at 83.
 */
export interface DoubleLayout {
  rowsFastest: boolean;
  /** Result matrices a subgroup along the rows (x 4 along the columns): 4 (four subgroups, 2 x 2) or 2
   * (eight, 4 x 2: half the accumulators). */
  tm: 2 | 4;
  /** Stores before the fetch (the fetched registers free first) or the fetch first (two register sets). */
  fetchFirst: boolean;
}

export const DOUBLE: Record<string, DoubleLayout> = {
  'db-128x128-w4-k32': { rowsFastest: true, tm: 4, fetchFirst: false },
  'db-128x128-w4-k32-cols': { rowsFastest: false, tm: 4, fetchFirst: false },
  'db-128x128-w4-k32-fetch-first': { rowsFastest: true, tm: 4, fetchFirst: true },
  'db-128x128-w8-k32': { rowsFastest: true, tm: 2, fetchFirst: false },
};

export function doubleSource(l: DoubleLayout, n: number): string {
  if (n % 128 || n < 64) throw new Error('mma double: n must be a multiple of 128');
  const sgr = 128 / (16 * l.tm); // subgroups along the rows (two along the columns)
  const threads = 64 * sgr;
  const shares = 512 / threads; // of A and of B a k step per invocation (128 rows x 4 shares)
  // four shares of eight of A and of B a k step per invocation (128 rows x 4 shares / 128)
  const fetch = (step: string, set: string) =>
    range(shares).flatMap((i) => [
      `${set}a${i} = a[((row0 + (tid + ${threads * i}u) / 4u) * K + (${step}) * 32u + (tid % 4u) * 8u) / 8u];`,
      `${set}b${i} = b[((col0 + (tid + ${threads * i}u) / 4u) * K + (${step}) * 32u + (tid % 4u) * 8u) / 8u];`,
    ]);
  const store = (buf: number, set: string) =>
    range(shares).flatMap((i) => [`store_a(${buf}u, (tid + ${threads * i}u) / 4u, tid % 4u, ${set}a${i});`, `store_b(${buf}u, (tid + ${threads * i}u) / 4u, tid % 4u, ${set}b${i});`]);

  const last = (s: string) => `min(${s}, TILES - 1u)`;
  // step `step` (its tiles in buffer `buf`; the registers hold step + 1's shares)
  const kStep = (step: string, buf: number) => {
    const next = l.fetchFirst
      ? [...fetch(last(`${step} + 2u`), 'm'), ...store(1 - buf, 'n'), ...range(shares).flatMap((i) => [`na${i} = ma${i};`, `nb${i} = mb${i};`])]
      : [...store(1 - buf, 'n'), ...fetch(last(`${step} + 2u`), 'n')];
    return `// k step ${step}: the next step's shares into buffer ${1 - buf}, then this step's products
    ${next.join('\n    ')}
    ${products(`${sgr * buf}u + wr`, `${2 * buf}u + wc`, l.tm)}
    workgroupBarrier();`;
  };
  return `${header(n)}
// per-subgroup blocks (buffer * blocks + the subgroup's row or column block), rows of SA
var<workgroup> tile_a: array<array<f16, ${16 * l.tm}u * SA>, ${2 * sgr}u>;
var<workgroup> tile_b: array<array<f16, 64u * SA>, 4u>;
var<workgroup> stage: array<array<f32, 256u>, ${2 * sgr}u>;

${(
    [
      ['a', 16 * l.tm, sgr],
      ['b', 64, 2],
    ] as const
  )
    .map(
      ([t, rows, blocks]) => `/** Share (row, q) of ${t}'s tile in buffer buf: eight k from q * 8 of row 0 .. 127. */
fn store_${t}(buf: u32, row: u32, q: u32, v: vec4<u32>) {
  let blk = (buf * ${blocks}u + (row % 128u) / ${rows}u) % ${2 * blocks}u;
  let o = (row % ${rows}u) * SA + (q % 4u) * 8u;
  ${storeEight(`tile_${t}`)}
}`,
    )
    .join('\n\n')}

@compute @workgroup_size(${threads})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let row0 = wg.${l.rowsFastest ? 'x' : 'y'} * 128u;
  let col0 = wg.${l.rowsFastest ? 'y' : 'x'} * 128u;
  let sg = tid / 32u;
  let lane = tid % 32u;
  let wr = sg / 2u;
  let wc = sg % 2u;
  ${accumulators(l.tm)}
  ${(l.fetchFirst ? ['n', 'm'] : ['n']).map((x) => range(shares).map((i) => `var ${x}a${i}: vec4<u32>; var ${x}b${i}: vec4<u32>;`).join(' ')).join('\n  ')}
  ${[...fetch('0u', 'n'), ...store(0, 'n'), ...fetch('1u', 'n')].join('\n  ')}
  workgroupBarrier();
  ${loopAndEpilogue(kStep, `row0 + wr * ${16 * l.tm}u`, l.tm)}
}`;
}

/** The double-buffer layouts as the prototype bench's entries. */
export const DOUBLE_PROTOTYPES: PrototypeLayout[] = Object.entries(DOUBLE).map(([name, l]) => ({
  name,
  source: (n) => doubleSource(l, n),
  grid: (n) => [n / 128, n / 128],
}));
