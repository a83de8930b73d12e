// The GPU device in Node (Dawn, npm `webgpu`), with the error said for a terminal rather than a
// browser, and a lost device turned into a stop of the run.
import { getGpu, NoWebGPUError, type Gpu } from '../../src/engine/gpu.ts';

export async function nodeGpu(onLost: (message: string) => void): Promise<Gpu> {
  let gpu: Gpu;
  try {
    gpu = await getGpu();
  } catch (e) {
    if (e instanceof NoWebGPUError) {
      throw new Error(
        `Dawn found no usable GPU (${e.reason}): it needs a Vulkan driver (an NVIDIA/AMD/Intel driver, or Mesa 25 lavapipe on a machine without a GPU) and a writable XDG_RUNTIME_DIR.`,
      );
    }
    throw e;
  }
  gpu.onLost((reason, message) => onLost(`The GPU device was lost (${reason}${message ? `: ${message}` : ''}).`));
  return gpu;
}
