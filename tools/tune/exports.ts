// `--export`: each requested export written under the output folder by the same job the Export tab
// runs (src/engine/export-run.ts), into a NodeDirectorySink (files appear under their names only
// once complete), merging in a worker_threads pool and quantizing GGUF k-quants on the GPU
// (src/engine/kquant-gpu.ts; `--quantizer` chooses), the other types in the pool.
import { join, relative } from 'node:path';
import type { TemplateId } from '../../src/data/templates.ts';
import { exportLoaded, type LoadedExportDeps } from '../../src/engine/export-run.ts';
import type { ExportableModel } from '../../src/engine/export-source.ts';
import type { Kernels } from '../../src/engine/kernels.ts';
import { gpuQuantizer, isSoftwareGpu, type GpuQuantizer } from '../../src/engine/kquant-gpu.ts';
import type { QuantPool } from '../../src/io/quant-pool.ts';
import type { QuantizerChoice } from './args.ts';
import type { ExportCardFacts, ExportResult } from '../../src/io/export-job.ts';
import type { ModelFiles } from '../../src/io/model-source.ts';
import { createNodeQuantPool } from '../../src/io/quant-pool-node.ts';
import { NodeDirectorySink } from '../../src/io/sink-node.ts';
import type { ExportSpec } from './export-specs.ts';
import type { Output } from './output.ts';

export interface WrittenFile {
  /** Relative to the working folder when inside it, else absolute. */
  path: string;
  bytes: number;
}

export interface ExportContext {
  loaded: ExportableModel;
  files: ModelFiles;
  lora: LoadedExportDeps['lora'];
  /** The chat template the adapter was trained with (the tokenizer's own when absent). */
  template?: TemplateId;
  templateSource?: string;
  card?: ExportCardFacts;
  outDir: string;
  signal?: AbortSignal;
  /** `--quantizer` (default auto). */
  quantizer?: QuantizerChoice;
  /** The GPU to quantize on: the run's own, or one got for the export; null when there is none. */
  kernels?: () => Promise<Kernels | null>;
}

// The bundle (dist-tune) carries the pool's worker as quant-worker.js next to tune.js; from
// sources (tsx) the pool starts its TypeScript worker itself.
const BUNDLED_WORKER = 'quant-worker.js';

export interface ExportsDone {
  files: WrittenFile[];
  /** Each export's result (where its files went): what --push-to-hub uploads. */
  results: { spec: ExportSpec; result: ExportResult }[];
}

export async function runExports(specs: readonly ExportSpec[], ctx: ExportContext, out: Output): Promise<ExportsDone> {
  const needsPool = specs.some((s) => s.request.kind !== 'adapter');
  const bundled = !import.meta.url.endsWith('.ts');
  const pool = needsPool ? createNodeQuantPool({ workerUrl: bundled ? new URL(BUNDLED_WORKER, import.meta.url) : undefined }) : undefined;
  const written: WrittenFile[] = [];
  const results: ExportsDone['results'] = [];
  let quantizer: GpuQuantizer | undefined;
  try {
    if (pool && specs.some((s) => s.request.kind === 'gguf')) quantizer = await chooseQuantizer(ctx, pool, out);
    for (const spec of specs) {
      const result = await exportLoaded(
        {
          loaded: ctx.loaded,
          files: ctx.files,
          lora: ctx.lora,
          pool,
          quantizer,
          // A folder export gets a folder of its own name; a single file goes straight into DIR.
          sink: (plan) => new NodeDirectorySink(plan.layout === 'folder' ? join(ctx.outDir, plan.name) : ctx.outDir),
        },
        { ...spec.request, template: ctx.template, templateSource: ctx.templateSource, card: ctx.card },
        { signal: ctx.signal, onProgress: (p) => out.progress('export', { label: spec.label, ...p }) },
      );
      const files = result.files.map((f) => ({ path: shortPath(join(result.where, f.name)), bytes: f.bytes }));
      written.push(...files);
      results.push({ spec, result });
      for (const note of result.notes) out.say(`${spec.label}: ${note}`);
      out.say(`Exported ${spec.label} in ${result.seconds.toFixed(1)} s: ${files.map((f) => `${f.path} (${f.bytes} bytes)`).join(', ')}`);
    }
  } finally {
    quantizer?.destroy();
    pool?.close();
  }
  return { files: written, results };
}

/** The GPU quantizer for `--quantizer gpu` or auto (undefined: the pool quantizes everything). */
async function chooseQuantizer(ctx: ExportContext, pool: QuantPool, out: Output): Promise<GpuQuantizer | undefined> {
  const choice = ctx.quantizer ?? 'auto';
  if (choice === 'pool') return undefined;
  const kernels = ctx.kernels ? await ctx.kernels() : null;
  if (!kernels) {
    if (choice === 'gpu') throw new Error('--quantizer gpu: there is no GPU to quantize on (Dawn found no usable adapter).');
    return undefined;
  }
  const info = kernels.gpu.info;
  if (choice === 'auto' && isSoftwareGpu(info)) {
    out.say(`GGUF quantization in the worker pool: the GPU is a software one (${info.description}), slower than the pool (--quantizer gpu uses it anyway).`);
    return undefined;
  }
  out.say(`GGUF quantization (Q4_K, Q5_K, Q6_K, Q8_0) on the GPU: ${info.description || info.vendor}.`);
  return gpuQuantizer(kernels, { fallback: (t, w) => pool.quantize(t, w) });
}

function shortPath(p: string): string {
  const r = relative(process.cwd(), p);
  return r.startsWith('..') ? p : r;
}
