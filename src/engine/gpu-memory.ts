// GPU memory accounting: every long-lived engine buffer is created through trackedBuffer(), which
// records its size under a category in the device's GpuMemory; the bytes come back when the buffer
// is destroyed, by whatever code calls destroy() (the buffer's own destroy is wrapped, so callers
// need not know about the accountant). Current bytes, the high-water mark and a breakdown by
// category are what the planner's predictions are tested against (tests/gpu-memory.test.ts).
//
// Not tracked, by design: MAP_READ staging buffers of readbacks (created, mapped and destroyed in
// one call) and per-dispatch uniform buffers (a few bytes each, left to the garbage collector).
// Every other buffer of loading, training and generation goes through trackedBuffer();
// tests/memory-accounting.test.ts counts device.createBuffer against the accountant so that a new
// untracked buffer shows up there, by its label.

export const MEMORY_CATEGORIES = ['weights-nf4', 'weights-dense', 'lora', 'optimizer', 'activations', 'scratch'] as const;
export type MemoryCategory = (typeof MEMORY_CATEGORIES)[number];

export interface GpuMemorySnapshot {
  /** Bytes of live tracked buffers. */
  bytes: number;
  buffers: number;
  /** The most `bytes` has ever been on this device (since the last resetPeak). */
  peak: number;
  byCategory: Record<MemoryCategory, number>;
}

interface Entry {
  size: number;
  category: MemoryCategory;
}

/** A running maximum from the moment it was opened (e.g. the peak of one model load). */
export interface PeakWindow {
  readonly peak: number;
  close(): void;
}

const zeros = (): Record<MemoryCategory, number> => Object.fromEntries(MEMORY_CATEGORIES.map((c) => [c, 0])) as Record<MemoryCategory, number>;

export class GpuMemory {
  private readonly live = new Map<GPUBuffer, Entry>();
  private readonly windows = new Set<{ peak: number }>();
  private readonly perCategory = zeros();
  private readonly everTracked = new WeakSet<GPUBuffer>();
  bytes = 0;
  peak = 0;

  get buffers(): number {
    return this.live.size;
  }

  /** Creates a buffer and tracks it under `category`. */
  alloc(device: GPUDevice, descriptor: GPUBufferDescriptor, category: MemoryCategory): GPUBuffer {
    return this.track(device.createBuffer(descriptor), category);
  }

  /** Tracks an existing buffer; its destroy() then also returns its bytes. */
  track(buffer: GPUBuffer, category: MemoryCategory): GPUBuffer {
    if (this.live.has(buffer)) return buffer;
    this.everTracked.add(buffer);
    const size = buffer.size;
    this.live.set(buffer, { size, category });
    this.perCategory[category] += size;
    this.bytes += size;
    if (this.bytes > this.peak) this.peak = this.bytes;
    for (const w of this.windows) if (this.bytes > w.peak) w.peak = this.bytes;
    const destroy = buffer.destroy;
    buffer.destroy = () => {
      this.release(buffer);
      destroy.call(buffer);
    };
    return buffer;
  }

  /** Stops counting a buffer that is left to the garbage collector instead of destroyed (commands
   * recorded but not yet submitted may still use it). */
  forget(buffer: GPUBuffer): void {
    this.release(buffer);
  }

  /** Destroys a tracked (or untracked) buffer; the same as buffer.destroy(). */
  free(buffer: GPUBuffer): void {
    buffer.destroy();
  }

  /** Whether `buffer` was ever tracked here (live or destroyed since): for tests that look for
   * buffers that escaped the accountant. */
  tracked(buffer: GPUBuffer): boolean {
    return this.everTracked.has(buffer);
  }

  category(c: MemoryCategory): number {
    return this.perCategory[c];
  }

  snapshot(): GpuMemorySnapshot {
    return { bytes: this.bytes, buffers: this.live.size, peak: this.peak, byCategory: { ...this.perCategory } };
  }

  /** Starts the high-water mark over from the current bytes. */
  resetPeak(): void {
    this.peak = this.bytes;
  }

  /** A window whose peak is the most bytes live at any moment between now and close(). */
  openWindow(): PeakWindow {
    const w = { peak: this.bytes };
    this.windows.add(w);
    return {
      get peak() {
        return w.peak;
      },
      close: () => void this.windows.delete(w),
    };
  }

  /** The device is gone and every buffer with it (device lost). */
  clear(): void {
    this.live.clear();
    Object.assign(this.perCategory, zeros());
    this.bytes = 0;
  }

  private release(buffer: GPUBuffer): void {
    const e = this.live.get(buffer);
    if (!e) return; // destroyed twice: counted once
    this.live.delete(buffer);
    this.perCategory[e.category] -= e.size;
    this.bytes -= e.size;
  }
}

const byDevice = new WeakMap<GPUDevice, GpuMemory>();

/** The accountant of `device` (one per device, created on first use). */
export function gpuMemory(device: GPUDevice): GpuMemory {
  let m = byDevice.get(device);
  if (!m) {
    const created = new GpuMemory();
    byDevice.set(device, (m = created));
    void device.lost?.then(() => created.clear());
  }
  return m;
}

/** device.createBuffer, counted in the device's GpuMemory under `category`. */
export function trackedBuffer(device: GPUDevice, descriptor: GPUBufferDescriptor, category: MemoryCategory): GPUBuffer {
  return gpuMemory(device).alloc(device, descriptor, category);
}

/**
 * The category of a tensor created without one, from its label's conventions: HF weight names
 * (model.*, lm_head.*) are dense weights, lora.<layer>.<linear>.A/B adapters and .grad_A/.grad_B
 * their gradients, adam./adamw./adamw8./optim. optimizer state, act./kv. activations; anything
 * else (unlabelled, per-op outputs) is scratch.
 */
export function categoryOfLabel(label: string | undefined): MemoryCategory {
  if (!label) return 'scratch';
  if (/^(model|lm_head)\./.test(label)) return 'weights-dense';
  if (/^lora\..+\.(grad_)?(A|B)$/.test(label)) return 'lora';
  if (/^(adam|adamw|adamw8|optim|optimizer)\./.test(label)) return 'optimizer';
  if (/^(act|kv)\./.test(label)) return 'activations';
  return 'scratch';
}
