// How many workgroups of a given shape the GPU runs at once: the notes' open question (bench/
// tensor-core-notes.md, sessions 21-23) whether a 128-invocation GEMM workgroup of ~200-250 registers
// and 36-44 KB of workgroup memory shares its SM with a second one (the driver picks the split of an
// SM's 256 KB between L1 and shared memory, which Vulkan does not let us ask for). Each workgroup
// counts itself into an atomic on arrival, spins a fixed time with REGS values live in registers
// (chains of fma, so the driver keeps them), notes the most workgroups it saw active, and counts
// itself out; the most any saw, over the SM count, is the residency. On the H200 (session 24) an SM's
// workgroups get ~48 KiB of workgroup memory in all, whatever their invocations or registers: 12 at
// 4 KiB, 2 at 20-24, 1 from 26 (bench/h200-2026-12-01-s24-residency*.json).
import type { Kernels } from '../../src/engine/kernels.ts';
import { readU32, uploadU32 } from '../../src/engine/tensor.ts';

export interface ResidencyResult {
  op: 'residency-probe';
  name: string;
  threads: number;
  /** Bytes of workgroup memory each workgroup declares (and touches). */
  workgroupBytes: number;
  /** f32 values each invocation keeps live through the spin. */
  regs: number;
  /** The most workgroups seen active at once, and that over the SMs. */
  maxActive: number;
  perSm: number;
}

interface Probe {
  threads: number;
  kib: number;
  regs: number;
}

const SMS = 132;
const SPIN = 4000;

/** The probes run by default (the memory grid around the H200's steps, and GEMM-like registers);
 * any name of the form w{threads}-{KiB}k[-r{values}] may be asked for (--ablate). */
export const PROBES = ['w128-4k', 'w128-8k', 'w128-12k', 'w128-16k', 'w128-24k', 'w128-26k', 'w128-36k', 'w128-48k', 'w256-24k', 'w256-28k', 'w128-24k-r240', 'w128-44k-r240', 'w256-47k-r200'];

export function parseProbe(name: string): Probe {
  const m = /^w(\d+)-(\d+)k(?:-r(\d+))?$/.exec(name);
  if (!m) throw new Error(`residency probe: "${name}" is not w{threads}-{KiB}k[-r{values}] (e.g. w128-20k-r200)`);
  return { threads: Number(m[1]), kib: Number(m[2]), regs: Number(m[3] ?? 8) };
}

export function probeSource(p: Probe): string {
  const words = Math.max(1, (p.kib * 1024) / 16);
  const r = Array.from({ length: p.regs }, (_, i) => i);
  return `@group(0) @binding(0) var<storage, read_write> counts: array<atomic<u32>, 2>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
var<workgroup> pad: array<vec4<u32>, ${words}>;
@compute @workgroup_size(${p.threads})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32) {
  for (var i = tid; i < ${words}u; i += ${p.threads}u) { pad[i] = vec4<u32>(i, wg.x, 0u, 1u); }
  workgroupBarrier();
  if (tid == 0u) { atomicAdd(&counts[0], 1u); }
  let x = f32(tid) * 1e-6;
  ${r.map((i) => `var r${i} = f32(pad[(tid + ${i}u) % ${words}u].x);`).join('\n  ')}
  var seen = 0u;
  for (var s = 0u; s < ${SPIN}u; s++) {
    if (tid == 0u) { seen = max(seen, atomicLoad(&counts[0])); }
    ${r.map((i) => `r${i} = fma(r${i}, x, ${(i + 1) * 1e-3});`).join('\n    ')}
  }
  workgroupBarrier();
  if (tid == 0u) { atomicMax(&counts[1], seen); atomicSub(&counts[0], 1u); }
  out[wg.x * ${p.threads}u + tid] = ${r.length ? r.map((i) => `r${i}`).join(' + ') : '0.0'} + f32(pad[(tid + 1u) % ${words}u].y);
}`;
}

export async function benchResidency(kernels: Kernels, only: string[] = []): Promise<ResidencyResult[]> {
  const { device } = kernels.gpu;
  const results: ResidencyResult[] = [];
  // --ablate is shared with other sections: this one takes the names that start as its probes' do.
  const asked = only.filter((name) => /^w\d/.test(name));
  const probes = (asked.length ? asked : PROBES).map((name) => [name, parseProbe(name)] as const);
  const groups = 16 * SMS;
  const counts = uploadU32(device, [0, 0], 'bench.residency.counts'); // [active now, most seen]
  const out = device.createBuffer({ size: groups * Math.max(...probes.map(([, p]) => p.threads)) * 4, usage: GPUBufferUsage.STORAGE, label: 'bench.residency.out' });
  for (const [name, p] of probes) {
    const kernel = kernels.get({ name: `residency-probe ${name}`, source: probeSource(p), dtype: 'f32' });
    let maxActive = 0;
    // Three rounds, the first to bring the clock up; the most seen in any.
    for (let round = 0; round < 3; round++) {
      device.queue.writeBuffer(counts.buffer, 0, new Uint32Array(2));
      kernels.run(kernel, [counts.buffer, out], {}, [groups]);
      const [left, seen] = await readU32(device, counts);
      if (left !== 0) throw new Error(`residency probe ${name}: ${left} workgroups never counted themselves out`);
      maxActive = Math.max(maxActive, seen);
    }
    const r: ResidencyResult = { op: 'residency-probe', name, threads: p.threads, workgroupBytes: p.kib * 1024, regs: p.regs, maxActive, perSm: maxActive / SMS };
    results.push(r);
    console.log(`residency ${name}: ${maxActive} workgroups at once (${r.perSm.toFixed(2)} an SM of ${SMS})`);
  }
  counts.buffer.destroy();
  out.destroy();
  return results;
}
