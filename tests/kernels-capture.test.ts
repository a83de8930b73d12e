// Kernels.capture / replay (what decode replays token after token, generate.ts): a replay issues
// what the capture saw, in order, with the pipelines set where they change (also after dispatches
// recorded straight into the same pass); sameDispatches tells captures apart by pipeline, what a
// bind group holds and grid; what a capture cannot keep is refused by name.
import { beforeAll, describe, expect, it } from 'vitest';
import { Kernels, submitPass, type Kernel } from '../src/engine/kernels.ts';
import { readTensor, uploadTensor, type Tensor } from '../src/engine/tensor.ts';
import { testGpu } from './gpu/device.ts';

// y[i] = y[i] * p.a + p.b: the order of two dispatches on one buffer shows in the result.
const AFFINE = `
struct Params { n: u32, a: f32, b: f32 }
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  if (g.x < p.n) { y[g.x] = y[g.x] * p.a + p.b; }
}
`;
// y[i] += 1, another pipeline.
const INC = `
struct Params { n: u32 }
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) g: vec3u) {
  if (g.x < p.n) { y[g.x] += 1.0; }
}
`;

let kernels: Kernels;
let affine: Kernel;
let inc: Kernel;
beforeAll(async () => {
  kernels = new Kernels(await testGpu());
  affine = kernels.get({ name: 'test-affine', source: AFFINE, dtype: 'f32' });
  inc = kernels.get({ name: 'test-inc', source: INC, dtype: 'f32' });
});

const N = 100;
const start = () => uploadTensor(kernels.device, Float32Array.from({ length: N }, (_, i) => i), [N], 'f32');

/** y * 2 + 1, then + 1, then y * 3 - 4 (two pipelines, the first one again after the second). */
function steps(pass: GPUComputePassEncoder, y: Tensor, grid = 2): void {
  kernels.dispatchAt(pass, affine, [[0, y.buffer]], { n: N, a: 2, b: 1 }, [grid]);
  kernels.dispatchAt(pass, inc, [[0, y.buffer]], { n: N }, [grid]);
  kernels.dispatchAt(pass, affine, [[0, y.buffer]], { n: N, a: 3, b: -4 }, [grid]);
}

describe('Kernels.capture / replay', () => {
  it('replays what it captured, in order, after a dispatch recorded straight into the pass', async () => {
    const y = start();
    const captured = kernels.capture((pass) => steps(pass, y));
    expect(captured.calls.map((c) => c.pipeline)).toEqual([affine.pipeline, inc.pipeline, affine.pipeline]);
    // The pass's last pipeline (inc, set by dispatchAt) differs from the replay's first (affine):
    // replay must set it, and the dispatchAt after the replay must set inc again.
    submitPass(kernels, (pass) => {
      kernels.dispatchAt(pass, inc, [[0, y.buffer]], { n: N }, [2]);
      kernels.replay(pass, captured);
      kernels.dispatchAt(pass, inc, [[0, y.buffer]], { n: N }, [2]);
    });
    const got = await readTensor(kernels.device, y);
    // i, + 1 (direct), * 2 + 1, + 1, * 3 - 4 (replayed), + 1 (direct).
    expect(Array.from(got)).toEqual(Array.from({ length: N }, (_, i) => ((i + 1) * 2 + 1 + 1) * 3 - 4 + 1));
    y.buffer.destroy();
  });

  it('tells captures apart by grid and by buffer, not by when they were made', () => {
    const [y, z] = [start(), start()];
    const a = kernels.capture((pass) => steps(pass, y));
    expect(kernels.sameDispatches(a, kernels.capture((pass) => steps(pass, y)))).toBe(true);
    expect(kernels.sameDispatches(a, kernels.capture((pass) => steps(pass, y, 3)))).toBe(false);
    expect(kernels.sameDispatches(a, kernels.capture((pass) => steps(pass, z)))).toBe(false);
    expect(kernels.sameDispatches(a, kernels.capture((pass) => kernels.dispatchAt(pass, affine, [[0, y.buffer]], { n: N, a: 2, b: 1 }, [2])))).toBe(false);
    y.buffer.destroy();
    z.buffer.destroy();
  });

  it('refuses what it cannot keep, by name', () => {
    expect(() => kernels.capture((pass) => pass.end())).toThrow(/end is not captured/);
    expect(() => kernels.capture((pass) => pass.setBindGroup(1, null))).toThrow(/setBindGroup\(1/);
    expect(() => kernels.capture((pass) => pass.dispatchWorkgroups(1))).toThrow(/without a pipeline/);
  });
});
