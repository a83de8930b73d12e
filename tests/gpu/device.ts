// One GPU device per test file, from the same getGpu() the app uses (Dawn in Node).
import { expect } from 'vitest';
import { getGpu, type Gpu } from '../../src/engine/gpu.ts';
import { Kernels } from '../../src/engine/kernels.ts';

let shared: Promise<Gpu> | undefined;

export function testGpu(): Promise<Gpu> {
  shared ??= getGpu();
  return shared;
}

// Instances behind withDefaultLimitsKernels: held for the life of the process, as a collected
// Dawn instance takes its devices down with it.
const dawnInstances: GPU[] = [];

/**
 * Runs `fn` with Kernels on a second device created with WebGPU's default limits (16 KiB of
 * workgroup memory, 8 storage buffers a stage) and no f16, from its own Dawn instance; checks
 * that it raised no validation error, then destroys the device.
 */
export async function withDefaultLimitsKernels(gpu: Gpu, fn: (kernels: Kernels) => Promise<void>): Promise<void> {
  const dawn = (await import(/* @vite-ignore */ 'webgpu')) as { create(flags: string[]): GPU };
  const instance = dawn.create([]);
  dawnInstances.push(instance);
  const adapter = await instance.requestAdapter();
  const device = await adapter!.requestDevice();
  try {
    expect(device.limits.maxComputeWorkgroupStorageSize).toBe(16384);
    const limits = { ...gpu.info.limits };
    for (const name of Object.keys(limits) as (keyof typeof limits)[]) limits[name] = device.limits[name];
    device.pushErrorScope('validation');
    await fn(new Kernels({ ...gpu, device, info: { ...gpu.info, f16: false, limits } }));
    expect(await device.popErrorScope()).toBeNull();
  } finally {
    device.destroy();
  }
}
