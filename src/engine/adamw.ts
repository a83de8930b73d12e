// AdamW (torch.optim.AdamW semantics: decoupled weight decay, bias correction), with 32-bit
// states (shaders/adamw.wgsl) or bitsandbytes-style 8-bit blockwise states (shaders/adamw8bit.wgsl:
// block 256, signed dynamic map for m, unsigned for v, f32 absmax per block; adamw_8bit, the
// seed recipe's optimizer). One dispatch per parameter tensor (the LoRA A and B of each target).
// The gradient is taken times a clip coefficient read on the GPU (gradnorm.ts's result), so that
// clip_grad_norm_'s scaling costs no dispatch of its own.
// As bnb does by default, a tensor of fewer than 4096 elements keeps 32-bit states even when
// 8-bit is asked for (min8bitSize; 0 turns the rule off). The update follows torch's order of
// operations in both (bnb's 8-bit kernel applies the decay after the step instead: a difference of
// lr² · wd · step, far below the quantization noise).
// Reference: reference/adamw.ts.
import { grid, FLAT_WORKGROUP, type Kernels } from './kernels.ts';
import { createTensor, numel, type Tensor } from './tensor.ts';
import { trackedBuffer } from './gpu-memory.ts';
import { createDynamicMap, torchLinspaceF32 } from '../io/nf4.ts';
import source32 from '../../shaders/adamw.wgsl?raw';
import source8 from '../../shaders/adamw8bit.wgsl?raw';

/** torch.optim.AdamW's hyperparameters (its defaults, lr aside). */
export interface AdamwConfig {
  lr: number;
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay; default 0.01 (torch's AdamW default). */
  weightDecay?: number;
}

/** Elements per block of the 8-bit states (bnb's blocksize for its blockwise optimizers). */
export const ADAMW8_BLOCK = 256;
/** bnb's min_8bit_size: tensors with fewer elements keep 32-bit states. */
export const ADAMW8_MIN_SIZE = 4096;

export interface Adamw32State {
  bits: 32;
  n: number;
  /** [n] f32. */
  m: Tensor;
  v: Tensor;
}

export interface Adamw8State {
  bits: 8;
  n: number;
  /** ceil(n / 4) u32 words: one 8-bit code per element, element e in byte e % 4 of word e / 4. */
  m: GPUBuffer;
  v: GPUBuffer;
  /** [ceil(n / 256)] f32: absmax per block. */
  mAbsmax: Tensor;
  vAbsmax: Tensor;
}

export type AdamwState = Adamw32State | Adamw8State;

/**
 * Zeroed states for a parameter of n elements: 8-bit when asked and n >= min8bitSize (default
 * ADAMW8_MIN_SIZE, bnb's rule), else 32-bit.
 */
export function createAdamwState(kernels: Kernels, n: number, opts: { bits?: 8 | 32; min8bitSize?: number } = {}): AdamwState {
  if (!(Number.isInteger(n) && n > 0)) throw new Error(`adamw: a state needs a positive element count, not ${n}`);
  const device = kernels.device;
  if ((opts.bits ?? 32) === 32 || n < (opts.min8bitSize ?? ADAMW8_MIN_SIZE)) {
    return { bits: 32, n, m: createTensor(device, [n], 'f32', 'adamw.m', 'optimizer'), v: createTensor(device, [n], 'f32', 'adamw.v', 'optimizer') };
  }
  const codes = (label: string) =>
    trackedBuffer(device, { size: Math.ceil(n / 4) * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST, label }, 'optimizer');
  const blocks = Math.ceil(n / ADAMW8_BLOCK);
  return {
    bits: 8,
    n,
    m: codes('adamw8.m'),
    v: codes('adamw8.v'),
    mAbsmax: createTensor(device, [blocks], 'f32', 'adamw8.m-absmax', 'optimizer'),
    vAbsmax: createTensor(device, [blocks], 'f32', 'adamw8.v-absmax', 'optimizer'),
  };
}

export function destroyAdamwState(s: AdamwState): void {
  if (s.bits === 32) {
    s.m.buffer.destroy();
    s.v.buffer.destroy();
  } else {
    s.m.destroy();
    s.v.destroy();
    s.mAbsmax.buffer.destroy();
    s.vAbsmax.buffer.destroy();
  }
}

/**
 * The uniform values of a step (1-based `step`), computed in float64 as torch does in Python, and
 * the bias correction's of the step after it (the kernel takes those when the clip's count says the
 * update is one later: a step submitted before the last one's outcome was read).
 */
export function adamwScalars(cfg: AdamwConfig, step: number): Record<string, number> {
  const beta1 = cfg.beta1 ?? 0.9;
  const beta2 = cfg.beta2 ?? 0.999;
  const eps = cfg.eps ?? 1e-8;
  const wd = cfg.weightDecay ?? 0.01;
  if (!(Number.isInteger(step) && step >= 1)) throw new Error(`adamw: step must be an integer >= 1, not ${step}`);
  if (!(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1)) throw new Error(`adamw: betas must be in [0, 1), not ${beta1}, ${beta2}`);
  if (!(Number.isFinite(cfg.lr) && cfg.lr >= 0 && eps >= 0 && wd >= 0)) throw new Error('adamw: lr, eps and weight decay must be finite and >= 0');
  return {
    beta2,
    one_minus_beta1: 1 - beta1,
    one_minus_beta2: 1 - beta2,
    eps,
    decay: 1 - cfg.lr * wd,
    step_size: cfg.lr / (1 - beta1 ** step),
    bc2_sqrt: Math.sqrt(1 - beta2 ** step),
    step,
    step_size_next: cfg.lr / (1 - beta1 ** (step + 1)),
    bc2_sqrt_next: Math.sqrt(1 - beta2 ** (step + 1)),
  };
}

/**
 * Records one AdamW step (1-based `step`) of `param` ([...], f32) with `grad` (f32, same shape)
 * into `pass`, updating param and the states in place. `clip`: gradnorm's result (GradNormScratch
 * `result`: the gradient is taken times its coefficient, element 1, as clip_grad_norm_ would have
 * scaled it in place), and when its norm (element 0) is inf or NaN nothing changes (the step is
 * skipped on the GPU); absent, the gradient as it is. `step` is the earliest this update can be;
 * where the clip's count of applied updates (element 3) is past it, the kernel takes step + 1 (the
 * trainer submits a step before it has read whether the one before was applied).
 */
export function encodeAdamwStep(
  kernels: Kernels,
  pass: GPUComputePassEncoder,
  param: Tensor,
  grad: Tensor,
  state: AdamwState,
  cfg: AdamwConfig,
  step: number,
  clip?: Tensor,
): void {
  const n = numel(param.shape);
  if (param.dtype !== 'f32' || grad.dtype !== 'f32') throw new Error(`adamw: param and grad must be f32, not ${param.dtype}/${grad.dtype}`);
  if (numel(grad.shape) !== n || grad.shape.join() !== param.shape.join()) throw new Error(`adamw: grad has shape [${grad.shape}], param [${param.shape}]`);
  if (state.n !== n) throw new Error(`adamw: the state holds ${state.n} elements, the param ${n}`);
  if (grad.buffer === param.buffer) throw new Error('adamw: grad must not be param');
  if (clip && (clip.dtype !== 'f32' || numel(clip.shape) < 4)) throw new Error(`adamw: clip must be gradnorm's f32 result (norm, coefficient, Σ g², count), not ${clip.dtype} [${clip.shape}]`);
  const params = { n, ...adamwScalars(cfg, step) };
  const coef = clip?.buffer ?? noClip(kernels.device);
  if (state.bits === 32) {
    const kernel = kernels.get({ name: 'adamw', source: source32, dtype: 'f32' });
    kernels.dispatch(pass, kernel, [param.buffer, grad.buffer, state.m.buffer, state.v.buffer, coef], params, grid(kernels, Math.ceil(n / FLAT_WORKGROUP)));
  } else {
    dispatch8(kernels, pass, 0, [param.buffer, grad.buffer], state, params, coef);
  }
}

const noClips = new WeakMap<GPUDevice, GPUBuffer>();

/** A gradnorm result whose coefficient (element 1) is 1, for steps without clipping (one per device). */
function noClip(device: GPUDevice): GPUBuffer {
  let b = noClips.get(device);
  if (!b) {
    b = trackedBuffer(device, { size: 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, label: 'adamw.no_clip' }, 'scratch');
    device.queue.writeBuffer(b, 0, new Float32Array([0, 1, 0, 0]));
    noClips.set(device, b);
  }
  return b;
}

/** Records codes and absmax of an 8-bit state from f32 m and v ([n] each): loading a checkpoint, tests. */
export function encodeAdamw8Quantize(kernels: Kernels, pass: GPUComputePassEncoder, m: Tensor, v: Tensor, state: Adamw8State): void {
  check8(m, v, state);
  dispatch8(kernels, pass, 1, [m.buffer, v.buffer], state, { n: state.n });
}

/** Records f32 m and v ([n] each) from an 8-bit state: saving a checkpoint, tests. */
export function encodeAdamw8Dequantize(kernels: Kernels, pass: GPUComputePassEncoder, state: Adamw8State, m: Tensor, v: Tensor): void {
  check8(m, v, state);
  dispatch8(kernels, pass, 2, [m.buffer, v.buffer], state, { n: state.n });
}

function check8(m: Tensor, v: Tensor, state: Adamw8State): void {
  for (const [name, t] of [['m', m], ['v', v]] as const) {
    if (t.dtype !== 'f32' || numel(t.shape) !== state.n) throw new Error(`adamw8: ${name} must be f32 with ${state.n} elements, not ${t.dtype} [${t.shape}]`);
  }
  if (m.buffer === v.buffer) throw new Error('adamw8: m and v must be two buffers');
}

function dispatch8(kernels: Kernels, pass: GPUComputePassEncoder, mode: number, f32s: GPUBuffer[], s: Adamw8State, params: Record<string, number>, clip?: GPUBuffer): void {
  const kernel = kernels.get({ name: 'adamw8bit', source: source8, dtype: 'f32', constants: { MODE: mode } });
  const maps = dynamicMaps();
  const buffers = [...f32s, s.m, s.v, s.mAbsmax.buffer, s.vAbsmax.buffer, qmapBuffer(kernels.device), clip ?? noClip(kernels.device)];
  kernels.dispatch(pass, kernel, buffers, { ...params, zero_signed: maps.zeroSigned, zero_unsigned: maps.zeroUnsigned }, grid(kernels, Math.ceil(s.n / ADAMW8_BLOCK)));
}

/**
 * bnb's `create_dynamic_map(signed=False, max_exponent_bits=7, total_bits=8)` (the map of the
 * second Adam state), computed in f32 as torch does: for i = 0..6, n = 2^(i+1) + 1 points
 * torch.linspace(0.1, 1, n, dtype=float32), the means of neighbours ((a + b) / 2 in f32), times
 * f32(10^(i-6)); plus 0 and 1; sorted. 256 values, [0] = 0, [255] = 1. (The signed map,
 * createDynamicMap in io/nf4.ts, takes 2^i + 1 points per exponent and both signs.)
 */
export function createDynamicMapUnsigned(): Float32Array {
  const f = Math.fround;
  const values: number[] = [];
  for (let i = 0; i < 7; i++) {
    const b = torchLinspaceF32(0.1, 1, 2 ** (i + 1) + 1);
    const scale = f(10 ** (i - 6));
    for (let j = 0; j + 1 < b.length; j++) values.push(f(scale * f(f(b[j] + b[j + 1]) / 2)));
  }
  values.push(0, 1);
  return new Float32Array(values.sort((a, b) => a - b));
}

/** The 255 quantization thresholds of a sorted map: f32((map[i] + map[i+1]) · 0.5). */
export function dynamicMapMidpoints(map: Float32Array): Float32Array {
  const f = Math.fround;
  const mid = new Float32Array(map.length - 1);
  for (let i = 0; i + 1 < map.length; i++) mid[i] = f(f(map[i] + map[i + 1]) * 0.5);
  return mid;
}

export interface DynamicMaps {
  signed: Float32Array;
  unsigned: Float32Array;
  zeroSigned: number;
  zeroUnsigned: number;
}

let maps: DynamicMaps | undefined;
/** The two maps of the 8-bit states and the index of 0 in each (computed once). */
export function dynamicMaps(): DynamicMaps {
  if (!maps) {
    const signed = createDynamicMap();
    const unsigned = createDynamicMapUnsigned();
    maps = { signed, unsigned, zeroSigned: signed.indexOf(0), zeroUnsigned: unsigned.indexOf(0) };
  }
  return maps;
}

/** The shader's qmap: [signed map, its midpoints (+1 pad), unsigned map, its midpoints (+1 pad)], once per device. */
const qmaps = new WeakMap<GPUDevice, GPUBuffer>();
function qmapBuffer(device: GPUDevice): GPUBuffer {
  let buffer = qmaps.get(device);
  if (!buffer) {
    const { signed, unsigned } = dynamicMaps();
    const data = new Float32Array(1024);
    data.set(signed, 0);
    data.set(dynamicMapMidpoints(signed), 256);
    data.set(unsigned, 512);
    data.set(dynamicMapMidpoints(unsigned), 768);
    // Once per device, never destroyed: 4 KiB counted as optimizer state.
    buffer = trackedBuffer(device, { size: data.byteLength, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST, label: 'adamw8.qmap' }, 'optimizer');
    device.queue.writeBuffer(buffer, 0, data);
    qmaps.set(device, buffer);
  }
  return buffer;
}
