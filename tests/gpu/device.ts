// One GPU device per test file, from the same getGpu() the app uses (Dawn in Node).
import { getGpu, type Gpu } from '../../src/engine/gpu.ts';

let shared: Promise<Gpu> | undefined;

export function testGpu(): Promise<Gpu> {
  shared ??= getGpu();
  return shared;
}
