// Node 20 lacks Float16Array, which browsers have and webgpu-utils expects at import time.
import { Float16Array } from '@petamoriken/float16';

const g = globalThis as { Float16Array?: unknown };
g.Float16Array ??= Float16Array;
