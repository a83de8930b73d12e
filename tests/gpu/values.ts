// Values as a tensor of storage type `dtype` holds them: what a float64 reference must be given so
// that only the kernel's own arithmetic differs.
import { f16ArrayToF32, f32ArrayToF16 } from '../../src/io/dtype.ts';
import type { DType } from '../../src/engine/tensor.ts';

export const asStored = (x: Float32Array, dtype: DType): Float32Array => (dtype === 'f16' ? f16ArrayToF32(f32ArrayToF16(x)) : x);
