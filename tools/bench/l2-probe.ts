// How fast an SM's loads bring data in from L2, without a GEMM around them: the notes' question
// (bench/tensor-core-notes.md, sessions 22-23) whether the ~3.4 TB/s that every staging form of the
// GEMM's k loop tops out at is the path's ceiling or the kernels' way of loading. Each invocation
// reads 16-byte words of a buffer that fits the L2 (or, for the DRAM figure, does not), UNROLL
// independent loads at a time (then XORs them into a register: the loads of one round are in flight
// together, as the GEMM's fetch of a k step), with a warp's 32 loads in runs of RUN contiguous bytes
// RUN_STRIDE apart (512: one coalesced 512-byte piece; 64: eight rows of 64 bytes 8 KB apart, the
// x·Bᵀ fetch's pattern at k steps of 32). The grid holds `perSm` workgroups per SM of the H200 (132).
import type { Kernels } from '../../src/engine/kernels.ts';
import { timePass } from './timing.ts';

export interface L2ProbeResult {
  op: 'l2-probe';
  name: string;
  /** Bytes read per second, in TB/s. */
  tbps: number;
  ms: number;
  bytes: number;
}

interface Probe {
  threads: number;
  perSm: number;
  unroll: number;
  /** Contiguous bytes of a warp's run (16 x lanes in a run): 512, 128 or 64. */
  run: number;
  /** The buffer read, in MiB (a power of two): 16 stays in the L2 (50 MB), 1024 does not. */
  mib: number;
}

const SMS = 132;
const ROW_VEC4 = 512; // 8 KB between runs: a 4096-wide f16 row

export const PROBES: Record<string, Probe> = {
  'full-occupancy': { threads: 256, perSm: 8, unroll: 8, run: 512, mib: 16 },
  'gemm-like': { threads: 256, perSm: 1, unroll: 6, run: 512, mib: 16 },
  'gemm-like-run64': { threads: 256, perSm: 1, unroll: 6, run: 64, mib: 16 },
  'gemm-like-run128': { threads: 256, perSm: 1, unroll: 6, run: 128, mib: 16 },
  'gemm-like-unroll12': { threads: 256, perSm: 1, unroll: 12, run: 512, mib: 16 },
  'gemm-like-unroll24': { threads: 256, perSm: 1, unroll: 24, run: 512, mib: 16 },
  'gemm-like-run64-unroll24': { threads: 256, perSm: 1, unroll: 24, run: 64, mib: 16 },
  'two-wg-run64': { threads: 256, perSm: 2, unroll: 6, run: 64, mib: 16 },
  '1024-threads-run64': { threads: 1024, perSm: 1, unroll: 6, run: 64, mib: 16 },
  dram: { threads: 256, perSm: 8, unroll: 8, run: 512, mib: 1024 },
};

/** Rounds of UNROLL loads per invocation: ~2 GB read a dispatch at full occupancy. */
const ROUNDS = 256;

export function probeSource(p: Probe): string {
  const lanesPerRun = p.run / 16;
  const mask = (p.mib << 20) / 16 - 1;
  const loads = Array.from({ length: p.unroll }, (_, u) => `let v${u} = src[at(r * ${p.unroll}u + ${u}u, warp, lane)];`);
  return `@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<u32>>;
const WARPS = ${(p.threads / 32) * p.perSm * SMS}u;
// load slot s of a warp: its runs ${p.run} bytes, ${ROW_VEC4 * 16} bytes apart; neighbouring warps read
// the next pieces of the same rows (as the k steps of a GEMM's fetch do)
fn at(s: u32, warp: u32, lane: u32) -> u32 {
  let slot = s * WARPS + warp;
  let per = ${ROW_VEC4 / lanesPerRun}u; // slots along one set of rows
  let base = (slot / per) * ${(32 / lanesPerRun) * ROW_VEC4}u + (slot % per) * ${lanesPerRun}u;
  return (base + (lane / ${lanesPerRun}u) * ${ROW_VEC4}u + lane % ${lanesPerRun}u) & ${mask}u;
}
@compute @workgroup_size(${p.threads})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) tid: u32) {
  let warp = wg.x * ${p.threads / 32}u + tid / 32u;
  let lane = tid % 32u;
  var acc = vec4<u32>(0u);
  for (var r = 0u; r < ${ROUNDS}u; r++) {
    ${loads.join('\n    ')}
    acc ^= ${Array.from({ length: p.unroll }, (_, u) => `v${u}`).join(' ^ ')};
  }
  out[wg.x * ${p.threads}u + tid] = acc;
}`;
}

export async function benchL2Probe(kernels: Kernels, repeats: number, only: string[] = []): Promise<L2ProbeResult[]> {
  const { device } = kernels.gpu;
  const results: L2ProbeResult[] = [];
  const probes = Object.entries(PROBES).filter(([name]) => !only.length || only.includes(name));
  const src = device.createBuffer({ size: Math.max(...probes.map(([, p]) => p.mib)) << 20, usage: GPUBufferUsage.STORAGE, label: 'bench.l2.src' });
  const invocations = Math.max(...probes.map(([, p]) => p.threads * p.perSm * SMS));
  const out = device.createBuffer({ size: invocations * 16, usage: GPUBufferUsage.STORAGE, label: 'bench.l2.out' });
  for (const [name, p] of probes) {
    const kernel = kernels.get({ name: `l2-probe ${name}`, source: probeSource(p), dtype: 'f32' });
    const seconds = await timePass(kernels.gpu, repeats, (pass) => kernels.dispatchAt(pass, kernel, [[0, { buffer: src, size: p.mib << 20 }], [1, out]], {}, [p.perSm * SMS]));
    const bytes = p.threads * p.perSm * SMS * ROUNDS * p.unroll * 16;
    const r: L2ProbeResult = { op: 'l2-probe', name, tbps: bytes / seconds / 1e12, ms: seconds * 1e3, bytes };
    results.push(r);
    console.log(`l2 probe ${name}: ${r.tbps.toFixed(2)} TB/s (${(bytes / 2 ** 30).toFixed(2)} GiB in ${r.ms.toFixed(3)} ms)`);
  }
  src.destroy();
  out.destroy();
  return results;
}
