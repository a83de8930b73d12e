// Specialises WGSL from shaders/ for the storage type and caches the compiled pipelines. Each
// kernel's wrapper imports its own source (`import src from '../../shaders/x.wgsl?raw'`).
// Every kernel binds its storage buffers at @binding(0..n-1) of group 0 and takes its scalar
// parameters in one uniform struct `p`, whose layout webgpu-utils reads from the WGSL itself.
import { makeShaderDataDefinitions, makeStructuredView, type StructuredView } from 'webgpu-utils';
import type { Gpu } from './gpu.ts';
import { trackedBuffer } from './gpu-memory.ts';
import type { DType } from './tensor.ts';

export interface KernelSpec {
  /** Names the kernel in labels and errors, e.g. 'matmul'. */
  name: string;
  /** The WGSL source, using `T` for the storage type. */
  source: string;
  /** Storage type of the tensors the kernel reads and writes; the shader sees it as `T`. */
  dtype: DType;
  /** Values for the shader's `override` constants. */
  constants?: Record<string, number | boolean>;
  entryPoint?: string;
}

export interface Kernel {
  /** Tells kernels apart in the bind-group cache. */
  id: number;
  source: string;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  /** The uniform `p`, laid out as the shader declares it; undefined when the shader has none. */
  params?: StructuredView;
  /** Writes `p`'s fields: straight into their one-element views where every field is a scalar. */
  setParams: (values: Record<string, number>) => void;
  /** `p`'s bytes as words (the bind-group cache's key). */
  paramWords?: Uint32Array;
  paramsBinding: number;
}

/**
 * The WGSL a spec compiles: the storage-type alias ahead of the source, and ahead of that every
 * directive (`enable …;`, `diagnostic(…);`: WGSL wants them before any declaration, and wrappers
 * prepend declarations to sources that have them), once each, with `enable f16;` for f16.
 */
export function specialise(source: string, dtype: DType): string {
  const directive = /^(?:enable|diagnostic)\b[^\n]*\n/gm;
  const directives = new Set(source.match(directive) ?? []);
  if (dtype === 'f16') directives.add('enable f16;\n');
  return `${[...directives].join('')}alias T = ${dtype};\n${source.replace(directive, '')}`;
}

/** One dispatch as `Kernels.capture` kept it. */
export interface CapturedDispatch {
  pipeline: GPUComputePipeline;
  group: GPUBindGroup;
  x: number;
  y: number;
  z: number;
}

/** Dispatches recorded once (`Kernels.capture`) for `Kernels.replay`. */
export interface CapturedDispatches {
  readonly calls: readonly CapturedDispatch[];
}

export class Kernels {
  private readonly cache = new Map<string, Kernel>();
  /** Bind groups by the hash of their key, in the order made. */
  private readonly groups = new Map<number, { key: number[]; group: GPUBindGroup }[]>();
  private groupCount = 0;
  private readonly keyScratch: number[] = [];
  private readonly lastPipeline = new WeakMap<GPUComputePassEncoder, GPUComputePipeline>();
  /** What each bind group made here holds (its cache key), also after the cache dropped it. */
  private readonly groupKeys = new WeakMap<GPUBindGroup, number[]>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextId = 0;

  /**
   * 16-byte storage buffers (one vec4) bound where a shader declares a binding that a dispatch
   * leaves unused (absent segment ids, a group's missing members): never read or written. Distinct
   * ones for writable bindings, which WebGPU forbids to alias within a dispatch. Made with the
   * Kernels, so that they are not counted as a later operation's memory.
   */
  private readonly placeholders: GPUBuffer[];

  constructor(readonly gpu: Gpu) {
    this.placeholders = [0, 1, 2].map((slot) => trackedBuffer(gpu.device, { size: 16, usage: GPUBufferUsage.STORAGE, label: `placeholder ${slot}` }, 'scratch'));
  }

  /** Placeholder `slot` (0 .. 2; see `placeholders`). */
  placeholder(slot = 0): GPUBuffer {
    return this.placeholders[slot];
  }

  get device(): GPUDevice {
    return this.gpu.device;
  }

  get(spec: KernelSpec): Kernel {
    if (spec.dtype === 'f16' && !this.gpu.info.f16) throw new Error(`kernel ${spec.name}: this device has no shader-f16`);
    const key = `${spec.name}|${spec.dtype}|${spec.entryPoint ?? 'main'}${spec.constants ? `|${JSON.stringify(spec.constants)}` : ''}`;
    const hit = this.cache.get(key);
    if (hit) {
      // Lengths only: sources are often built per call, and comparing their text would flatten
      // them on every dispatch (microseconds each, hundreds of dispatches per decoded token).
      if (hit.source.length !== spec.source.length) throw new Error(`kernel name '${spec.name}' is used by two different shaders`);
      return hit;
    }
    const kernel = this.compile(spec);
    this.cache.set(key, kernel);
    return kernel;
  }

  /**
   * Records one dispatch into `pass`. `buffers` are bound at bindings 0..n-1 and the uniform
   * struct `p` (filled from `params`) after them.
   */
  dispatch(
    pass: GPUComputePassEncoder,
    kernel: Kernel,
    buffers: GPUBuffer[],
    params: Record<string, number>,
    workgroups: [number, number?, number?],
  ): void {
    this.dispatchAt(pass, kernel, buffers.map((buffer, binding) => [binding, buffer]), params, workgroups);
  }

  /**
   * Records one dispatch with explicit binding numbers; a binding may be a buffer range (e.g. the
   * rows of one vocabulary chunk), for entry points that use only some of a shader's bindings.
   */
  dispatchAt(
    pass: GPUComputePassEncoder,
    kernel: Kernel,
    bindings: [number, GPUBuffer | GPUBufferBinding][],
    params: Record<string, number>,
    workgroups: [number, number?, number?],
  ): void {
    kernel.setParams(params);
    const bindGroup = this.bindGroup(kernel, bindings);
    const limit = this.gpu.info.limits.maxComputeWorkgroupsPerDimension;
    const [x, y = 1, z = 1] = workgroups;
    if (x > limit || y > limit || z > limit) throw new Error(`${kernel.pipeline.label}: dispatch ${x}x${y}x${z} exceeds ${limit} workgroups per dimension`);
    // Each call into the native binding costs about a microsecond or more: decode records hundreds
    // of dispatches per token, runs of them with one pipeline (a layer's q, k, v GEMVs).
    if (this.lastPipeline.get(pass) !== kernel.pipeline) {
      pass.setPipeline(kernel.pipeline);
      this.lastPipeline.set(pass, kernel.pipeline);
    }
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
  }

  /**
   * Runs `record` against a pass that keeps its dispatches (what dispatchAt issues) instead of
   * issuing them, for `replay` to issue as often as needed: decode records the same step token
   * after token, and the JavaScript around its native calls (shapes, checks, bind-group lookups)
   * was about half of the recording's CPU time.
   */
  capture(record: (pass: GPUComputePassEncoder) => void): CapturedDispatches {
    const calls: CapturedDispatch[] = [];
    let pipeline: GPUComputePipeline | null = null;
    let group: GPUBindGroup | null = null;
    const unsupported = (what: string) => () => {
      throw new Error(`kernels.capture: ${what} is not captured (only setPipeline, setBindGroup(0, group) and dispatchWorkgroups)`);
    };
    const pass = {
      label: 'capture',
      setPipeline: (p: GPUComputePipeline) => void (pipeline = p),
      setBindGroup: (index: number, g: GPUBindGroup | null) => {
        if (index !== 0 || !g) throw new Error(`kernels.capture: setBindGroup(${index}, ${g}) is not captured (only group 0)`);
        group = g;
      },
      dispatchWorkgroups: (x: number, y = 1, z = 1) => {
        if (!pipeline || !group) throw new Error('kernels.capture: a dispatch without a pipeline and bind group');
        calls.push({ pipeline, group, x, y, z });
      },
      dispatchWorkgroupsIndirect: unsupported('dispatchWorkgroupsIndirect'),
      end: unsupported('end'),
    };
    record(pass as unknown as GPUComputePassEncoder);
    return { calls };
  }

  /**
   * Whether two captures issue the same dispatches: the same pipelines, bind groups that hold the
   * same buffers, ranges and parameters (the same group, or one made again after the cache
   * dropped it), the same grids.
   */
  sameDispatches(a: CapturedDispatches, b: CapturedDispatches): boolean {
    const holds = (g: GPUBindGroup, h: GPUBindGroup) => {
      if (g === h) return true;
      const [kg, kh] = [this.groupKeys.get(g), this.groupKeys.get(h)];
      return !!kg && !!kh && sameKey(kg, kh);
    };
    return a.calls.length === b.calls.length && a.calls.every((c, i) => {
      const d = b.calls[i];
      return c.pipeline === d.pipeline && holds(c.group, d.group) && c.x === d.x && c.y === d.y && c.z === d.z;
    });
  }

  /** Issues captured dispatches into `pass`, setting pipelines only where they change. */
  replay(pass: GPUComputePassEncoder, captured: CapturedDispatches): void {
    let last = this.lastPipeline.get(pass);
    for (const { pipeline, group, x, y, z } of captured.calls) {
      if (pipeline !== last) pass.setPipeline((last = pipeline));
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(x, y, z);
    }
    if (last) this.lastPipeline.set(pass, last);
  }

  /** One compute pass with one dispatch, submitted now. */
  run(kernel: Kernel, buffers: GPUBuffer[], params: Record<string, number>, workgroups: [number, number?, number?]): void {
    const encoder = this.device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    this.dispatch(pass, kernel, buffers, params, workgroups);
    pass.end();
    this.device.queue.submit([encoder.finish()]);
  }

  /**
   * The bind group of these bindings and the uniform bytes now in `kernel.params`. Recording a
   * dispatch costs tens of microseconds of CPU when it makes a uniform buffer and a bind group, and
   * a decode step records hundreds of dispatches whose buffers and parameters repeat token after
   * token, so groups are kept by what they hold: a key of integers (kernel, binding, buffer id,
   * range, parameter words) hashed to a number, checked in full on a hit (a string key cost ~8 us
   * a dispatch to build and hash). Bounded: past BIND_GROUP_CACHE groups the oldest made goes (a
   * dropped group and its uniform are left to the garbage collector).
   */
  private bindGroup(kernel: Kernel, bindings: [number, GPUBuffer | GPUBufferBinding][]): GPUBindGroup {
    const key = this.keyScratch;
    key.length = 0;
    key.push(kernel.id);
    for (const [binding, r] of bindings) {
      if ('buffer' in r) key.push(binding, this.idOf(r.buffer), r.offset ?? 0, r.size ?? -1);
      else key.push(binding, this.idOf(r), 0, -1);
    }
    if (kernel.paramWords) for (const w of kernel.paramWords) key.push(w);
    let hash = 0x811c9dc5;
    for (const v of key) hash = Math.imul(hash ^ v, 0x01000193);
    const bucket = this.groups.get(hash);
    if (bucket) {
      for (const e of bucket) if (sameKey(e.key, key)) return e.group;
    }
    const entries: GPUBindGroupEntry[] = bindings.map(([binding, r]) => ({
      binding,
      resource: 'buffer' in r ? r : { buffer: r },
    }));
    if (kernel.params) {
      const uniform = this.device.createBuffer({
        size: kernel.params.arrayBuffer.byteLength,
        usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      });
      this.device.queue.writeBuffer(uniform, 0, new Uint8Array(kernel.params.arrayBuffer));
      entries.push({ binding: kernel.paramsBinding, resource: { buffer: uniform } });
    }
    const group = this.device.createBindGroup({ layout: kernel.layout, entries });
    const kept = key.slice();
    this.groupKeys.set(group, kept);
    if (bucket) bucket.push({ key: kept, group });
    else this.groups.set(hash, [{ key: kept, group }]);
    if (++this.groupCount > BIND_GROUP_CACHE) {
      const [oldest, dropped] = this.groups.entries().next().value!;
      this.groups.delete(oldest);
      this.groupCount -= dropped.length;
    }
    return group;
  }

  private idOf(buffer: GPUBuffer): number {
    let id = this.bufferIds.get(buffer);
    if (id === undefined) this.bufferIds.set(buffer, (id = this.nextId++));
    return id;
  }

  private compile(spec: KernelSpec): Kernel {
    const code = specialise(spec.source, spec.dtype);
    const module = this.device.createShaderModule({ code, label: spec.name });
    // WebGPU takes override constants as numbers only (bool overrides read 0/1).
    const constants = Object.fromEntries(Object.entries(spec.constants ?? {}).map(([k, v]) => [k, Number(v)]));
    const pipeline = this.device.createComputePipeline({
      label: `${spec.name}${spec.entryPoint ? `.${spec.entryPoint}` : ''}:${spec.dtype}`,
      layout: 'auto',
      compute: { module, entryPoint: spec.entryPoint ?? 'main', constants },
    });
    const uniform = uniformDefinitions(code).uniforms.p;
    const params = uniform ? makeStructuredView(uniform) : undefined;
    return {
      id: this.nextId++,
      source: spec.source,
      pipeline,
      layout: pipeline.getBindGroupLayout(0),
      params,
      setParams: paramSetter(params),
      paramWords: params && new Uint32Array(params.arrayBuffer),
      paramsBinding: uniform?.binding ?? -1,
    };
  }
}

/**
 * webgpu-utils' view of the shader's uniforms. Its WGSL parser predates some syntax (subgroup
 * matrix builtins' template arguments); when it fails, it reads only the aliases, structs and the
 * uniform declaration, which is all the layout of `p` depends on.
 */
function uniformDefinitions(code: string): ReturnType<typeof makeShaderDataDefinitions> {
  try {
    return makeShaderDataDefinitions(code);
  } catch {
    const decls = code.match(/^alias [^\n]*$|^struct \w+ \{[^}]*\}|^@group\(\d+\) @binding\(\d+\) var<uniform>[^\n]*$/gm) ?? [];
    return makeShaderDataDefinitions(decls.join('\n'));
  }
}

function sameKey(a: number[], b: number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** `params.set`, or for a struct of scalars (every kernel's `p`) one typed-array store per field. */
function paramSetter(params: StructuredView | undefined): (values: Record<string, number>) => void {
  if (!params) return () => {};
  const views = params.views as Record<string, unknown>;
  const scalars = Object.values(views).every((v) => ArrayBuffer.isView(v) && (v as Uint32Array).length === 1);
  if (!scalars) return (values) => params.set(values);
  const fields = views as Record<string, Uint32Array | Float32Array | Int32Array>;
  return (values) => {
    for (const name in values) {
      const view = fields[name];
      if (view) view[0] = values[name]; // as params.set: names the struct lacks are ignored
    }
  };
}

/** Bind groups kept for reuse: a few decode steps' worth of an 8B model (about 20 per layer). */
const BIND_GROUP_CACHE = 4096;

/** Invocations per workgroup of the flat (one value per invocation) kernels. */
export const FLAT_WORKGROUP = 256;

/**
 * A grid of at least `count` workgroups: [count, 1] up to the per-dimension limit, else 2-D.
 * Shaders rebuild the flat workgroup index as wg.y * nwg.x + wg.x and skip the excess.
 */
export function grid(kernels: Kernels, count: number): [number, number] {
  const limit = kernels.gpu.info.limits.maxComputeWorkgroupsPerDimension;
  const n = Math.max(1, count);
  return n <= limit ? [n, 1] : [limit, Math.ceil(n / limit)];
}

/**
 * Source with `alias R = …` ahead: the type of the residual-stream tensors of a kernel. It is the
 * storage type T, or f32 when T is f16 (DESIGN.md: f32 residual stream in the f16 mode).
 */
export function withResidualType(kernel: string, src: string, dtype: DType, residual: DType): { name: string; source: string } {
  if (residual !== 'f32' && residual !== dtype) {
    throw new Error(`${kernel}: residual tensors must be f32 or the storage type ${dtype}, not ${residual}`);
  }
  return { name: `${kernel}(R=${residual})`, source: `alias R = ${residual};\n${src}` };
}

/** Throws unless each named buffer fits one storage binding (maxStorageBufferBindingSize). */
export function checkBindingSizes(kernels: Kernels, kernel: string, buffers: [string, GPUBuffer][]): void {
  const limit = kernels.gpu.info.limits.maxStorageBufferBindingSize;
  for (const [what, buffer] of buffers) {
    const size = sizeOf(buffer);
    if (size > limit) throw new Error(`${kernel}: the ${what} (${size} B) exceeds maxStorageBufferBindingSize ${limit}`);
  }
}

/** buffer.size, remembered: a property read crosses into the native binding (decode reads hundreds per token). */
const sizes = new WeakMap<GPUBuffer, number>();

export function sizeOf(buffer: GPUBuffer): number {
  let size = sizes.get(buffer);
  if (size === undefined) sizes.set(buffer, (size = buffer.size));
  return size;
}

/** Records `record` into one compute pass and submits it now (tests, self-tests, one-offs). */
export function submitPass(kernels: Kernels, record: (pass: GPUComputePassEncoder) => void): void {
  const encoder = kernels.device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  try {
    record(pass);
  } finally {
    pass.end(); // a throw leaves nothing submitted
  }
  kernels.device.queue.submit([encoder.finish()]);
}
