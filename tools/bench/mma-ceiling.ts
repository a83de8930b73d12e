// What the subgroup-matrix units give through this stack (Dawn -> Vulkan -> the driver) with nothing
// else in the way: kernels that only multiply, as the GEMM's inner step does, without its device
// memory traffic. Tells how much of the distance between the GEMM (src/engine/matmul-mma.ts) and
// PyTorch is the kernel's and how much the stack's.
//   mma   each subgroup's TM + TN operands loaded once, then ITERS rounds of TM x TN products
//   load  per round four k steps of 16, each loading TM + TN operands from workgroup memory at
//         constant offsets (as the GEMM's blocks), then its products; one barrier per round (the
//         GEMM has two per k step of 64, plus its stores), which also keeps the loads in the loop
//   stage load's rounds, each followed by the GEMM's staging: every invocation stores 64 scalar f16
//         (a k step's share of a 128x64 A tile and of a B tile, as 16 runs of 4) and a second barrier
//   global stage's, the stored values first loaded from device memory (16 loads of 8 bytes an
//         invocation, issued before the round's products, the tiles of a 4096 x 4096 f16 matrix)
//   global-checked  global's loads each behind the GEMM's bounds checks (row < rows, column < width,
//         from a uniform), the loaded vector zero where they fail
import type { Gpu } from '../../src/engine/gpu.ts';
import { timePass } from './timing.ts';

export interface MmaCeilingResult {
  op: 'mma-ceiling';
  mode: 'mma' | 'load' | 'stage' | 'global' | 'global-checked';
  tm: number;
  tn: number;
  ms: number;
  tflops: number;
}

const ITERS = 512;
const SUBGROUPS = 8;
const WORKGROUPS = 132 * 8;

/** Modes whose rounds are four k steps from workgroup memory. */
const staged = (mode: MmaCeilingResult['mode']): boolean => mode !== 'mma';
const fromDevice = (mode: MmaCeilingResult['mode']): boolean => mode === 'global' || mode === 'global-checked';

function source(mode: MmaCeilingResult['mode'], tm: number, tn: number): string {
  const range = (n: number) => Array.from({ length: n }, (_, i) => i);
  const cells = range(tm).flatMap((i) => range(tn).map((j) => [i, j] as const));
  const stride = 72; // a row of a 64-wide k block, padded as the GEMM pads
  const load = (kk: number) => [
    ...range(tm).map((i) => `let l${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>, row_major>(&ta[sg % 2u], ${16 * i * stride + kk}u, ${stride}u);`),
    ...range(tn).map((j) => `let r${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>, col_major>(&tb[(sg / 2u) % 2u], ${16 * j * stride + kk}u, ${stride}u);`),
  ];
  const products = cells.map(([i, j]) => `acc${i}_${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, acc${i}_${j});`);
  const inRounds = staged(mode);
  const fetches = Array.from({ length: 8 }, (_, i) => i);
  const row = (i: number, block: string) => `${block} * 128u + (tid + ${i * SUBGROUPS * 32}u) / 16u`;
  const get = (i: number, block: string) =>
    mode === 'global-checked'
      ? `fetch(${row(i, block)}, k4 * 4u + (tid % 16u) * 4u)`
      : `src[(${row(i, block)}) * 1024u + k4 + (tid % 16u)]`;
  const fetch = fromDevice(mode)
    ? `let k4 = ((it * 64u) % 4096u) / 4u;
    ${fetches.map((i) => `let fa${i} = ${get(i, '(wg.x % 32u)')};`).join('\n    ')}
    ${fetches.map((i) => `let fb${i} = ${get(i, '((wg.x / 32u) % 32u)')};`).join('\n    ')}
    `
    : '';
  const value = (set: string, i: number, j: number) => (fromDevice(mode) ? `${set}${i}[${j}]` : 'f16(f32(it & 7u))');
  const round =
    !inRounds
      ? products.join('\n    ')
      : fetch +
        [0, 16, 32, 48].map((kk) => `{\n      ${[...load(kk), ...products].join('\n      ')}\n    }`).join('\n    ') +
        '\n    workgroupBarrier();' +
        (mode === 'load'
          ? ''
          : fetches
              .map((i) => {
                const f = `(tid + ${i * SUBGROUPS * 32}u)`;
                const o = `((${f} / 16u) % ${tm * 16}u) * ${stride}u + (${f} % 16u) * 4u`;
                const q = `((${f} / 16u) % ${tn * 16}u) * ${stride}u + (${f} % 16u) * 4u`;
                return [0, 1, 2, 3].map((j) => `ta[${i % 2}][${o} + ${j}u] = ${value('fa', i, j)}; tb[${i % 2}][${q} + ${j}u] = ${value('fb', i, j)};`).join('\n    ');
              })
              .join('\n    ') + '\n    workgroupBarrier();');
  return `enable f16;
enable chromium_experimental_subgroup_matrix;
diagnostic(off, chromium.subgroup_matrix_uniformity);
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
${fromDevice(mode) ? '@group(0) @binding(1) var<storage, read> src: array<vec4<f16>>;' : ''}
${
  mode === 'global-checked'
    ? `struct Bounds { rows: u32, width: u32 }
@group(0) @binding(2) var<uniform> bounds: Bounds;
fn fetch(r: u32, c: u32) -> vec4<f16> {
  var v = vec4<f16>(0.0);
  if (r < bounds.rows) {
    if (c < bounds.width) { v = src[(r * bounds.width + c) / 4u]; }
  }
  return v;
}`
    : ''
}
var<workgroup> ta: array<array<f16, ${tm * 16 * stride}>, 2>;
var<workgroup> tb: array<array<f16, ${tn * 16 * stride}>, 2>;
var<workgroup> stage: array<array<f32, 256>, ${SUBGROUPS}>;
@compute @workgroup_size(${SUBGROUPS * 32})
fn main(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3u) {
  let sg = tid / 32u;
  for (var i = tid; i < ${tm * 16 * stride}u; i += ${SUBGROUPS * 32}u) {
    for (var b = 0u; b < 2u; b++) { ta[b][i] = f16(f32((i + b) % 7u) * 0.01); }
  }
  for (var i = tid; i < ${tn * 16 * stride}u; i += ${SUBGROUPS * 32}u) {
    for (var b = 0u; b < 2u; b++) { tb[b][i] = f16(f32((i + b) % 5u) * 0.01); }
  }
  workgroupBarrier();
  ${cells.map(([i, j]) => `var acc${i}_${j} = subgroup_matrix_result<f32, 16, 16>();`).join('\n  ')}
  ${!inRounds ? load(0).join('\n  ') : ''}
  for (var it = 0u; it < ${ITERS}u; it++) {
    ${round}
  }
  var sum = 0.0;
  ${cells.map(([i, j]) => `subgroupMatrixStore<row_major>(&stage[sg], 0u, acc${i}_${j}, 16u);
  workgroupBarrier();
  sum += stage[sg][tid % 32u];
  workgroupBarrier();`).join('\n  ')}
  if (tid % 32u == 0u) { out[wg.x * ${SUBGROUPS}u + sg] = sum; }
}`;
}

/** TFLOP/s of the subgroup-matrix units with only workgroup-memory operands, per mode and subgroup block. */
export async function benchMmaCeiling(gpu: Gpu, repeats: number): Promise<MmaCeilingResult[]> {
  const device = gpu.device;
  const out = device.createBuffer({ size: WORKGROUPS * SUBGROUPS * 4, usage: GPUBufferUsage.STORAGE, label: 'bench.mma-ceiling' });
  const src = device.createBuffer({ size: 4096 * 4096 * 2, usage: GPUBufferUsage.STORAGE, label: 'bench.mma-ceiling.src' }); // zeros
  const bounds = device.createBuffer({ size: 8, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST, label: 'bench.mma-ceiling.bounds' });
  device.queue.writeBuffer(bounds, 0, Uint32Array.of(4096, 4096));
  const results: MmaCeilingResult[] = [];
  for (const mode of ['mma', 'load', 'stage', 'global', 'global-checked'] as const) {
    for (const [tm, tn] of [[2, 4], [4, 4]]) {
      const module = device.createShaderModule({ code: source(mode, tm, tn), label: `mma-ceiling ${mode} ${tm}x${tn}` });
      const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
      if (errors.length) {
        console.log(`mma ceiling ${mode} ${tm}x${tn}: does not compile: ${errors.map((e) => e.message).join('; ')}`);
        continue;
      }
      const pipeline = await device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' } });
      const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: out } }];
      if (fromDevice(mode)) entries.push({ binding: 1, resource: { buffer: src } });
      if (mode === 'global-checked') entries.push({ binding: 2, resource: { buffer: bounds } });
      const group = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
      const seconds = await timePass(gpu, repeats, (pass) => {
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, group);
        pass.dispatchWorkgroups(WORKGROUPS);
      });
      const k = staged(mode) ? 64 : 16; // products per round along k
      const flops = 2 * WORKGROUPS * SUBGROUPS * ITERS * tm * tn * 16 * 16 * k;
      const r: MmaCeilingResult = { op: 'mma-ceiling', mode, tm, tn, ms: seconds * 1e3, tflops: flops / seconds / 1e12 };
      results.push(r);
      console.log(`mma ceiling ${mode} ${tm}x${tn} per subgroup: ${r.ms.toFixed(3)} ms, ${r.tflops.toPrecision(3)} TFLOP/s`);
    }
  }
  out.destroy();
  src.destroy();
  bounds.destroy();
  return results;
}
