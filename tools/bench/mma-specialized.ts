// A prototype beside the engine's GEMM (src/engine/matmul-mma.ts), for the notes' question whether
// the k loop's single buffer is what holds the f16 GEMM near 200 TFLOP/s: warp-specialized and
// double-buffered. Consumer subgroups only multiply (TM x TN result matrices each, as the engine's);
// producer subgroups only fetch and stage, one k step ahead into the other buffer, their fetches
// issued a step before they are stored; one barrier a k step. WGSL has no asynchronous copy into
// workgroup memory and no barrier for a subset of the workgroup, so this is the nearest form of a
// cp.async pipeline it allows. Only a · Bᵀ, f16 in and out, every dimension a multiple of the block
// (no bounds checks: the engine's interior blocks), timed beside the engine's kernel on the same
// inputs and checked against a float64 reference on sampled outputs.
import type { Gpu } from '../../src/engine/gpu.ts';
import { encodeMmaMatmul } from '../../src/engine/matmul-mma.ts';
import type { Kernels } from '../../src/engine/kernels.ts';
import { createTensor, type Tensor } from '../../src/engine/tensor.ts';
import { f16BitsToF32, f32ToF16Bits } from '../../src/io/dtype.ts';
import { timePass } from './timing.ts';
import { DOUBLE_PROTOTYPES, PING_PONG_PROTOTYPES } from './mma-pingpong.ts';

/** A prototype kernel timed here: its shader for n^3 and its grid. */
export interface PrototypeLayout {
  name: string;
  source: (n: number) => string;
  grid: (n: number) => [number, number];
}

export interface MmaSpecializedResult {
  op: 'mma-specialized';
  name: string;
  /** [m, k, n]. */
  shape: number[];
  ms: number;
  tflops: number;
  /** Largest |got - want| / (|want| + 1) over the sampled outputs (f16 out: ~5e-4 expected). */
  maxError: number;
}

interface Layout {
  /** Consumer subgroups sgr x sgc, each tm x tn result matrices; producers subgroups. */
  tm: number;
  tn: number;
  sgr: number;
  sgc: number;
  producers: number;
  bk: number;
}

export const SPECIALIZED: Record<string, Layout> = {
  'ws-128x128-c4-p4': { tm: 4, tn: 4, sgr: 2, sgc: 2, producers: 4, bk: 32 },
  'ws-128x128-c4-p8': { tm: 4, tn: 4, sgr: 2, sgc: 2, producers: 8, bk: 32 },
  'ws-128x128-c8-p8': { tm: 2, tn: 4, sgr: 4, sgc: 2, producers: 8, bk: 32 },
  'ws-256x128-k16-c8-p4': { tm: 4, tn: 4, sgr: 4, sgc: 2, producers: 4, bk: 16 },
};

export function specializedSource(l: Layout, n: number): string {
  const range = (k: number) => Array.from({ length: k }, (_, i) => i);
  const [bm, bn, consumers] = [l.sgr * l.tm * 16, l.sgc * l.tn * 16, l.sgr * l.sgc];
  const pthreads = l.producers * 32;
  const sa = l.bk + 8;
  const aShares = (bm * l.bk) / 4 / pthreads;
  const bShares = (bn * l.bk) / 4 / pthreads;
  if (!Number.isInteger(aShares) || !Number.isInteger(bShares)) throw new Error('mma specialized: the tiles do not divide among the producers');
  const slots = Math.min(consumers, 4);
  const cells = range(l.tm).flatMap((i) => range(l.tn).map((j) => [i, j] as const));
  const step = (kk: number) =>
    [
      ...range(l.tm).map((i) => `let l${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&tile_a[buf * SGR + sgr], ${16 * i * sa + kk}u, SA);`),
      ...range(l.tn).map((j) => `let r${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&tile_b[buf * SGC + sgc], ${16 * j * sa + kk}u, SA);`),
      ...cells.map(([i, j]) => `acc${i}_${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, acc${i}_${j});`),
    ].join('\n        ');
  // share i of producer thread pt: row f / (BK / 4) of the tile, k (f % (BK / 4)) * 4, f = pt + i * PTHREADS
  const fetch = (k0: string) =>
    [
      ...range(aShares).map((i) => `sa${i} = a[((row0 + (pt + ${i * pthreads}u) / (BK / 4u)) * K + ${k0} + ((pt + ${i * pthreads}u) % (BK / 4u)) * 4u) / 4u];`),
      ...range(bShares).map((i) => `sb${i} = b[((col0 + (pt + ${i * pthreads}u) / (BK / 4u)) * K + ${k0} + ((pt + ${i * pthreads}u) % (BK / 4u)) * 4u) / 4u];`),
    ].join('\n      ');
  // put_a / put_b: a share into its tile (rows of the block, result matrices a subgroup along them, blocks a buffer)
  const put = (t: string, rows: string, per: string, blocks: string) => `fn put_${t}(buf: u32, f: u32, v: vec4<f16>) {
  let row = (f / (BK / 4u)) % ${rows};
  let blk = (buf % 2u) * ${blocks} + row / (${per} * 16u);
  let o = (row % (${per} * 16u)) * SA + (f % (BK / 4u)) * 4u;
  tile_${t}[blk][o] = v.x;
  tile_${t}[blk][o + 1u] = v.y;
  tile_${t}[blk][o + 2u] = v.z;
  tile_${t}[blk][o + 3u] = v.w;
}`;
  const store = (buf: string) =>
    [
      ...range(aShares).map((i) => `put_a(${buf}, pt + ${i * pthreads}u, sa${i});`),
      ...range(bShares).map((i) => `put_b(${buf}, pt + ${i * pthreads}u, sb${i});`),
    ].join('\n      ');
  return `enable f16;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
const BM = ${bm}u;
const BN = ${bn}u;
const BK = ${l.bk}u;
const SA = ${sa}u;
const TM = ${l.tm}u;
const TN = ${l.tn}u;
const SGR = ${l.sgr}u;
const SGC = ${l.sgc}u;
const CONSUMERS = ${consumers}u;
const PTHREADS = ${pthreads}u;
const SLOTS = ${slots}u;
const K = ${n}u;
const NC = ${n}u;
@group(0) @binding(0) var<storage, read> a: array<vec4<f16>>;
@group(0) @binding(1) var<storage, read> b: array<vec4<f16>>;
@group(0) @binding(2) var<storage, read_write> out: array<f16>;
// two buffers of per-subgroup blocks (buffer * SGR + the consumer's row block), as the engine's tiles
var<workgroup> tile_a: array<array<f16, TM * 16u * SA>, 2u * SGR>;
var<workgroup> tile_b: array<array<f16, TN * 16u * SA>, 2u * SGC>;
var<workgroup> stage: array<array<f32, 256>, SLOTS>; // the epilogue's, consumers SLOTS at a time (47 KB in all)

// Tile row f / (BK / 4) of share f, element order; indices reduced by constants (no robustness clamps).
${put('a', 'BM', 'TM', 'SGR')}
${put('b', 'BN', 'TN', 'SGC')}

@compute @workgroup_size(${(consumers + l.producers) * 32})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let row0 = wg.x * BM; // rows fastest, as the engine's x·Wᵀ
  let col0 = wg.y * BN;
  let sg = tid / 32u;
  let lane = tid % 32u;
  let consumer = sg < CONSUMERS;
  let sgr = (sg / SGC) % SGR;
  let sgc = sg % SGC;
  let pt = tid % PTHREADS;
  let tiles = K / BK;
  ${cells.map(([i, j]) => `var acc${i}_${j} = subgroup_matrix_result<f32, 16, 16>();`).join('\n  ')}
  ${range(aShares).map((i) => `var sa${i}: vec4<f16>;`).join(' ')}
  ${range(bShares).map((i) => `var sb${i}: vec4<f16>;`).join(' ')}
  if (!consumer) {
    {
      ${fetch('0u')}
    }
    ${store('0u')}
    {
      ${fetch('BK')}
    }
  }
  workgroupBarrier();
  for (var t = 0u; t < tiles; t++) {
    let buf = t % 2u;
    if (consumer) {
      ${range(l.bk / 16).map((q) => `{\n        ${step(16 * q)}\n      }`).join('\n      ')}
    } else {
      if (t + 1u < tiles) {
        ${store('(t + 1u) % 2u').replaceAll('\n      ', '\n        ')}
      }
      if (t + 2u < tiles) {
        let k2 = (t + 2u) * BK;
        ${fetch('k2').replaceAll('\n      ', '\n        ')}
      }
    }
    workgroupBarrier();
  }
  ${cells
    .flatMap(([i, j]) =>
      range(consumers / slots).map((g) =>
        [
          `if (consumer && sg / SLOTS == ${g}u) { subgroupMatrixStore<row_major>(&stage[sg % SLOTS], 0u, acc${i}_${j}, 16u); }`,
          'workgroupBarrier();',
          `if (consumer && sg / SLOTS == ${g}u) {`,
          '    for (var e = 0u; e < 8u; e++) {',
          '      let idx = lane + e * 32u;',
          `      out[(row0 + sgr * TM * 16u + ${16 * i}u + idx / 16u) * NC + col0 + sgc * TN * 16u + ${16 * j}u + idx % 16u] = f16(stage[sg % SLOTS][idx]);`,
          '    }',
          '  }',
          'workgroupBarrier();',
        ].join('\n  '),
      ),
    )
    .join('\n  ')}
}`;
}

/** Times each layout (and the engine's kernel) on a · Bᵀ at n^3, two copies of the inputs rotated. */
export async function benchMmaSpecialized(gpu: Gpu, kernels: Kernels, repeats: number, n = 4096, only: string[] = []): Promise<MmaSpecializedResult[]> {
  const device = gpu.device;
  const results: MmaSpecializedResult[] = [];
  if (!gpu.info.mmaF16) {
    console.log('mma specialized: this device has no f16 16x16x16 subgroup matrices; skipped');
    return results;
  }
  // quarters in [-1, 1] from a small LCG, as integers -4..4 (products and sums exact in f32)
  let seed = 12345;
  const next = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) % 9 - 4;
  const quarters = Array.from({ length: 2 }, () => Int8Array.from({ length: n * n }, next));
  const upload = (q: Int8Array, label: string): Tensor => {
    const t = createTensor(device, [n, n], 'f16', label);
    device.queue.writeBuffer(t.buffer, 0, Uint16Array.from(q, (x) => f32ToF16Bits(x / 4)));
    return t;
  };
  const copies = 2;
  const as = Array.from({ length: copies }, (_, c) => upload(quarters[c], 'bench.ws.a'));
  const bs = Array.from({ length: copies }, (_, c) => upload(quarters[1 - c], 'bench.ws.b'));
  const out = createTensor(device, [n, n], 'f16', 'bench.ws.out');
  // copy 0: a = quarters[0], b = quarters[1]; sampled outputs against float64
  const samples = Array.from({ length: 256 }, (_, s) => [(s * 2654435761) % n, (s * 40503 + 17) % n]);
  const want = samples.map(([r, c]) => {
    let sum = 0;
    for (let k = 0; k < n; k++) sum += (quarters[0][r * n + k] / 4) * (quarters[1][c * n + k] / 4);
    return sum;
  });
  const check = async (encode: (pass: GPUComputePassEncoder) => void): Promise<number> => {
    const encoder = device.createCommandEncoder();
    encoder.clearBuffer(out.buffer); // a kernel that wrote nothing must not pass on the last one's output
    const pass = encoder.beginComputePass();
    encode(pass);
    pass.end();
    const read = device.createBuffer({ size: n * n * 2, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    encoder.copyBufferToBuffer(out.buffer, 0, read, 0, n * n * 2);
    device.queue.submit([encoder.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    const got = new Uint16Array(read.getMappedRange());
    const err = Math.max(...samples.map(([r, c], s) => Math.abs(f16BitsToF32(got[r * n + c]) - want[s]) / (Math.abs(want[s]) + 1)));
    read.unmap();
    read.destroy();
    return Number.isNaN(err) ? Infinity : err;
  };
  const record = (name: string, seconds: number, maxError: number) => {
    const r: MmaSpecializedResult = { op: 'mma-specialized', name, shape: [n, n, n], ms: seconds * 1e3, tflops: (2 * n ** 3) / seconds / 1e12, maxError };
    results.push(r);
    console.log(`mma specialized ${name} [${n}^3]: ${r.ms.toFixed(3)} ms, ${r.tflops.toPrecision(3)} TFLOP/s, max error ${maxError.toExponential(2)}`);
  };

  const engine = (pass: GPUComputePassEncoder, i: number) => encodeMmaMatmul(kernels, pass, as[i % copies], { kind: 'dense', b: bs[i % copies] }, out, { m: n, nc: n, ki: n, transB: true });
  const engineError = await check((pass) => engine(pass, 0));
  record('engine', await timePass(gpu, repeats, engine), engineError);

  const prototypes: PrototypeLayout[] = [
    ...Object.entries(SPECIALIZED).map(([name, l]): PrototypeLayout => ({
      name,
      source: (n) => specializedSource(l, n),
      grid: (n) => [n / (l.sgr * l.tm * 16), n / (l.sgc * l.tn * 16)],
    })),
    ...PING_PONG_PROTOTYPES,
    ...DOUBLE_PROTOTYPES,
  ];
  for (const { name, source, grid } of prototypes) {
    if (only.length && !only.includes(name)) continue;
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ code: source(n), label: `mma-specialized ${name}` });
    const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
    if (errors.length) {
      await device.popErrorScope();
      console.log(`mma specialized ${name}: does not compile: ${errors.map((e) => `${e.lineNum}: ${e.message}`).join('; ')}`);
      continue;
    }
    const pipeline = await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } });
    const groups = Array.from({ length: copies }, (_, c) =>
      device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [as[c], bs[c], out].map((t, binding) => ({ binding, resource: { buffer: t.buffer } })),
      }),
    );
    const encode = (pass: GPUComputePassEncoder, i: number) => {
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, groups[i % copies]);
      pass.dispatchWorkgroups(...grid(n));
    };
    const error = await check((pass) => encode(pass, 0));
    const seconds = await timePass(gpu, repeats, encode);
    const invalid = await device.popErrorScope();
    if (invalid) {
      console.log(`mma specialized ${name}: invalid (${invalid.message.split('\n')[0]})`);
      continue;
    }
    record(name, seconds, error);
  }
  for (const t of [...as, ...bs, out]) t.buffer.destroy();
  return results;
}
