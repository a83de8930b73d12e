// `npm run bench`: engine figures on whatever GPU Dawn finds, written as JSON (--json FILE).
//   matmul  tiled matmul TFLOP/s (matmul.ts)
//   nf4     NF4 quantization throughput, GB/s of 16-bit input (nf4.ts)
//   load    load time of a 1B-shape model from the cache to the GPU (load.ts)
//   nf4mm   the fused NF4 matmul at the 8B MLP's training shape, forward and backward (engine.ts)
//   mma     the tensor-core GEMM (subgroup matrices) beside the SIMT kernels, every tiling checked first (mma.ts)
//   specialized  GEMM prototypes beside the engine's: warp-specialized (mma-specialized.ts), ping-pong (mma-pingpong.ts); --ablate names layouts
//   l2      how fast loads bring data in from L2 (and DRAM) in the GEMM's patterns (l2-probe.ts; --ablate names probes)
//   residency  how many workgroups of a given size, workgroup memory and registers run at once (residency-probe.ts; --ablate names probes)
//   attn    attention forward and backward at the 1B / 8B training shapes (attention.ts)
//   lora    LoRA forward and backward per (in, out) of the 1B / 8B linears at --seq tokens, and per training step (lora.ts)
//   record  CPU time to record one decode step, without submitting (for node --cpu-prof)
//   model   prefill, decode and QLoRA training of 1B- and 8B-shaped random models (engine.ts)
//   export  adapter / merged / GGUF export time of the demo model, and of 1B / 8B shapes (export.ts)
// Kernel timing: GPU timestamps around the dispatches when the adapter has timestamp-query (else
// wall clock around submit + onSubmittedWorkDone), warm-up first, median of the repeats, inputs
// rotated across several copies so repeats do not run out of a warm L2 (timing.ts).
// With --torch FILE (written by tools/reference/bench_torch.py), PyTorch's figures for the same
// shapes are put side by side with ours as ratios; with --torch-models FILE (bench_torch_models.py)
// the same for prefill, decode and PEFT training of the model shapes, and MFU against this run's
// f32 matmul peak (run `matmul` in the same call).
//
// Options: --only matmul,nf4,load   --sizes 1024,2048,4096   --repeats N   --json FILE   --torch FILE
//          --torch-models FILE
//          --quick (small shapes and few repeats, for a software GPU)   --no-tensor-cores
//          --checks-only (mma, attn: the float64 checks their fixtures keep, no timings)
//          --load-shape 1b|8b   --load-layers N   --load-vocab N   --load-repeats N   --load-dir DIR
//          --load-shard-bytes N   --keep (leave the generated cache folder in place)
//          --model-shapes 1b,8b   --model-layers N   --model-vocab N   --seq N   --train-steps N (0: none)   --decode-tokens N
//          --export-shapes demo,1b,8b   --export-layers N   --export-vocab N   --export-workers N
//          --export-quantizer gpu|pool (GGUF k-quants on the GPU, the default, or in the worker pool)
import '../../tests/setup/node-globals.ts';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describeGpu, getGpu } from '../../src/engine/gpu.ts';
import { Kernels } from '../../src/engine/kernels.ts';
import { benchLoad, describeLoad, type LoadBenchOptions, type LoadResult } from './load.ts';
import { benchMatmul, type MatmulResult } from './matmul.ts';
import { benchNf4, NF4_SHAPES, type Nf4Result } from './nf4.ts';
import { benchAttention, checkAttention, type AttentionBenchResult, type AttentionChecksReport } from './attention.ts';
import { benchMmaCeiling, type MmaCeilingResult } from './mma-ceiling.ts';
import { benchMmaSpecialized, type MmaSpecializedResult } from './mma-specialized.ts';
import { benchL2Probe, type L2ProbeResult } from './l2-probe.ts';
import { benchResidency, type ResidencyResult } from './residency-probe.ts';
import { benchMmaAblate, type MmaAblateResult } from './mma-ablate.ts';
import { benchAttentionAblate, type AttentionAblateResult } from './attention-ablate.ts';
import { benchMma, type MmaBenchReport } from './mma.ts';
import { benchSample, type SampleBenchResult } from './sample.ts';
import { benchLora, type LoraBenchReport } from './lora.ts';
import { benchExport, describeExport, type ExportBenchOptions, type ExportResult } from './export.ts';
import { benchDecodeRecording, benchModel, benchTrainRecording, benchNf4Matmul, engineDefaults, type EngineBenchOptions, type ModelBenchResult, type Nf4MatmulResult } from './engine.ts';

const SECTIONS = ['matmul', 'nf4', 'load', 'nf4mm', 'mma', 'ceiling', 'specialized', 'l2', 'residency', 'ablate', 'attn-ablate', 'sample', 'attn', 'lora', 'record', 'model', 'export'] as const;
type Section = (typeof SECTIONS)[number];

interface Args {
  json?: string;
  torch?: string;
  torchModels?: string;
  only: Section[];
  sizes: number[];
  repeats: number;
  quick: boolean;
  /** mma and attn: only the float64 checks (what tests/fixtures keeps), no timings. */
  checksOnly: boolean;
  tensorCores: boolean;
  load: LoadBenchOptions;
  engine: EngineBenchOptions;
  export: ExportBenchOptions;
  /** ablate: only these products and variants (names; empty: all). */
  ablate: string[];
}

function parseArgs(argv: string[]): Args {
  const quick = argv.includes('--quick');
  const args: Args = {
    only: [...SECTIONS],
    sizes: quick ? [256, 512] : [1024, 2048, 4096],
    repeats: quick ? 3 : 20,
    quick,
    checksOnly: argv.includes('--checks-only'),
    tensorCores: true,
    // --quick: the 1B's layer shapes, 2 of its 16 layers and a 16k vocab (about 0.16 B params).
    engine: engineDefaults(quick),
    export: { shapes: ['demo'] },
    ablate: [],
    load: { shape: '1b', dir: tmpdir(), keep: false, repeats: quick ? 2 : 3, ...(quick ? { layers: 2, vocab: 16384 } : {}) },
  };
  const num = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} wants a positive integer, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const v = argv[i + 1];
    if (flag === '--quick' || flag === '--build-only' || flag === '--checks-only') continue;
    if (flag === '--no-tensor-cores') {
      args.tensorCores = false;
      continue;
    }
    if (flag === '--keep') {
      args.load.keep = true;
      continue;
    }
    i++;
    if (flag === '--json') args.json = v;
    else if (flag === '--torch') args.torch = v;
    else if (flag === '--torch-models') args.torchModels = v;
    else if (flag === '--sizes') args.sizes = v.split(',').map((s) => num(flag, s));
    else if (flag === '--repeats') args.repeats = num(flag, v);
    else if (flag === '--only') {
      const only = v.split(',') as Section[];
      for (const s of only) if (!SECTIONS.includes(s)) throw new Error(`--only: ${s} is not one of ${SECTIONS.join(', ')}`);
      args.only = only;
    } else if (flag === '--load-shape') args.load.shape = v;
    else if (flag === '--load-layers') args.load.layers = num(flag, v);
    else if (flag === '--load-vocab') args.load.vocab = num(flag, v);
    else if (flag === '--load-repeats') args.load.repeats = num(flag, v);
    else if (flag === '--load-dir') args.load.dir = v;
    else if (flag === '--load-shard-bytes') args.load.shardBytes = num(flag, v);
    else if (flag === '--model-shapes') args.engine.shapes = v.split(',');
    else if (flag === '--ablate') args.ablate = v.split(',');
    else if (flag === '--model-layers') args.engine.layers = num(flag, v);
    else if (flag === '--model-vocab') args.engine.vocab = num(flag, v);
    else if (flag === '--seq') args.engine.seqLen = num(flag, v);
    else if (flag === '--train-steps') args.engine.trainSteps = v === '0' ? 0 : num(flag, v);
    else if (flag === '--decode-tokens') args.engine.decodeTokens = num(flag, v);
    else if (flag === '--export-shapes') args.export.shapes = v.split(',');
    else if (flag === '--export-layers') args.export.layers = num(flag, v);
    else if (flag === '--export-workers') args.export.workers = num(flag, v);
    else if (flag === '--export-vocab') args.export.vocab = num(flag, v);
    else if (flag === '--export-quantizer') {
      if (v !== 'gpu' && v !== 'pool') throw new Error(`--export-quantizer wants gpu or pool, got ${v}`);
      args.export.quantizer = v;
    }
    else throw new Error(`unknown option ${flag}`);
  }
  return args;
}

function addTorch(results: MatmulResult[], file: string): void {
  const torch = JSON.parse(readFileSync(file, 'utf8')) as { results: { op: string; shape: number[]; dtype: string; tflops: number }[] };
  const torchDtype: Record<string, string> = { f32: 'float32', f16: 'float16' };
  for (const r of results) {
    const t = torch.results.find((x) => x.op === r.op && x.shape.join() === r.shape.join() && x.dtype === torchDtype[r.dtype]);
    if (t) Object.assign(r, { torchTflops: t.tflops, ratioToTorch: r.tflops / t.tflops });
  }
}

interface TorchModel { shape: string; prefill_tokens_per_s: number; decode_tokens_per_s: number; train_tokens_per_s: number; train_peak_bytes: number }

/** PyTorch's prefill / decode / PEFT-training figures beside ours, as ratios ours / theirs. */
function addTorchModels(results: ModelBenchResult[], file: string): void {
  const torch = JSON.parse(readFileSync(file, 'utf8')) as { results: TorchModel[] };
  for (const r of results) {
    const t = torch.results.find((x) => x.shape === r.shape);
    if (!t) continue;
    r.torch = {
      prefillTokensPerSecond: t.prefill_tokens_per_s,
      decodeTokensPerSecond: t.decode_tokens_per_s,
      trainTokensPerSecond: t.train_tokens_per_s,
      trainPeakBytes: t.train_peak_bytes,
      prefillRatio: r.prefillTokensPerSecond / t.prefill_tokens_per_s,
      decodeRatio: r.decodeTokensPerSecond / t.decode_tokens_per_s,
      trainRatio: r.trainTokensPerSecond / t.train_tokens_per_s,
    };
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const gpu = await getGpu();
  // --no-tensor-cores: every product on the SIMT kernels, for a side-by-side run of the same figures.
  const kernels = new Kernels(args.tensorCores ? gpu : { ...gpu, info: { ...gpu.info, mmaF16: false } });
  console.log(describeGpu(gpu.info));
  const results: (MatmulResult | Nf4Result | LoadResult | Nf4MatmulResult | ModelBenchResult | ExportResult | AttentionBenchResult | AttentionChecksReport | MmaBenchReport | MmaCeilingResult | MmaSpecializedResult | L2ProbeResult | ResidencyResult | MmaAblateResult | AttentionAblateResult | SampleBenchResult | LoraBenchReport)[] = [];
  const summary: string[] = [];

  if (args.only.includes('matmul')) {
    const mm = await benchMatmul(gpu, kernels, args.sizes, args.repeats);
    if (args.torch) addTorch(mm, args.torch);
    results.push(...mm);
    for (const r of mm) summary.push(`matmul ${r.shape[0]}^3 ${r.dtype}: ${r.tflops.toPrecision(3)} TFLOP/s`);
  }
  if (args.only.includes('nf4')) {
    const nf4 = await benchNf4(gpu, kernels, args.repeats, NF4_SHAPES);
    results.push(...nf4);
    for (const r of nf4) summary.push(`NF4 quantize [${r.shape.join('x')}] ${r.dtype} input: ${r.gbps16.toFixed(2)} GB/s of 16-bit input`);
  }
  if (args.only.includes('load')) {
    const load = await benchLoad(gpu, kernels, args.load);
    results.push(load);
    console.log(describeLoad(load));
    summary.push(describeLoad(load));
  }

  if (args.only.includes('nf4mm')) {
    const [tokens, inp, out] = args.quick ? [256, 512, 1792] : [2048, 4096, 14336];
    const mm = await benchNf4Matmul(gpu, kernels, tokens, inp, out, args.repeats);
    results.push(...mm);
    for (const r of mm) summary.push(`NF4 matmul ${r.direction} [${r.shape.join('x')}]: ${r.gbps ? `${r.ms.toFixed(3)} ms, ${r.gbps.toFixed(0)} GB/s` : `${r.tflops.toPrecision(3)} TFLOP/s`}`);
  }
  if (args.only.includes('mma')) {
    const mma = await benchMma(gpu, kernels, args.sizes, args.repeats, args.quick, args.checksOnly);
    results.push(mma);
    const failed = mma.checks.filter((c) => !c.ok).length;
    summary.push(`mma checks: ${mma.checks.length - failed} passed, ${failed} failed, ${Object.keys(mma.compileErrors).length} compile errors; lm_head ${mma.lmHead?.ok ? 'ok' : 'FAILED'}; shared rows ${mma.rows?.ok ? 'ok' : 'FAILED'}`);
    for (const r of mma.results) summary.push(`mma ${r.tiling} ${r.what} [${r.shape.join('x')}]: ${r.tflops.toPrecision(3)} TFLOP/s`);
  }
  if (args.only.includes('ceiling') && gpu.info.mmaF16) {
    const ceiling = await benchMmaCeiling(gpu, args.repeats);
    results.push(...ceiling);
    for (const r of ceiling) summary.push(`mma ceiling (${r.mode}, ${r.tm}x${r.tn} a subgroup): ${r.tflops.toPrecision(3)} TFLOP/s`);
  }
  if (args.only.includes('specialized')) {
    const ws = await benchMmaSpecialized(gpu, kernels, args.repeats, 4096, args.ablate);
    results.push(...ws);
    for (const r of ws) summary.push(`mma specialized ${r.name}: ${r.ms.toFixed(3)} ms, ${r.tflops.toPrecision(3)} TFLOP/s, max error ${r.maxError.toExponential(2)}`);
  }
  if (args.only.includes('l2')) {
    const probes = await benchL2Probe(kernels, args.repeats, args.ablate);
    results.push(...probes);
    for (const r of probes) summary.push(`l2 probe ${r.name}: ${r.tbps.toFixed(2)} TB/s`);
  }
  if (args.only.includes('residency')) {
    const probes = await benchResidency(kernels, args.ablate);
    results.push(...probes);
    for (const r of probes) summary.push(`residency ${r.name}: ${r.maxActive} workgroups at once, ${r.perSm.toFixed(2)} an SM`);
  }
  if (args.only.includes('ablate')) {
    const ablate = await benchMmaAblate(gpu, kernels, args.repeats, args.ablate);
    results.push(...ablate);
    for (const r of ablate) summary.push(`mma ablate ${r.what} ${r.variant}: ${r.ms.toFixed(3)} ms, ${r.tflops.toPrecision(3)} TFLOP/s`);
  }
  if (args.only.includes('attn-ablate')) {
    const ablate = await benchAttentionAblate(gpu, args.repeats, args.ablate);
    results.push(...ablate);
    for (const r of ablate) summary.push(`attention ablate ${r.variant}: forward ${r.forwardMs.toFixed(3)} ms, backward ${r.backwardMs.toFixed(3)} ms`);
  }
  if (args.only.includes('sample')) {
    const sample = await benchSample(gpu, kernels, args.quick ? 32000 : 128256, args.repeats);
    results.push(...sample);
    for (const r of sample) summary.push(`sample ${r.mode} on ${r.logits} logits (V ${r.vocab}): ${r.ms.toFixed(3)} ms`);
  }
  if (args.only.includes('attn')) {
    if (gpu.info.f16) {
      const checks = await checkAttention(kernels);
      results.push(checks);
      const failed = checks.checks.filter((c) => !c.ok).length;
      summary.push(`attention checks (f16${kernels.gpu.info.mmaF16 ? ', tensor cores' : ''}): ${checks.checks.length - failed} passed, ${failed} failed`);
    }
    const attn = args.checksOnly ? [] : await benchAttention(gpu, kernels, args.engine, Math.min(args.repeats, 10));
    results.push(...attn);
    for (const r of attn) {
      for (const x of r.variants) summary.push(`attention ${r.shape} ${x.variant} at T ${r.dims[0]}: forward ${x.forwardTflops.toPrecision(3)} TFLOP/s, backward ${x.backwardTflops.toPrecision(3)}; ${x.trainStepSeconds.toFixed(3)} s per training step`);
      summary.push(`lm_head ${r.shape}: loss ${r.lmHeadLossTflops.toPrecision(3)} TFLOP/s, backward ${r.lmHeadBackwardTflops.toPrecision(3)}`);
    }
  }
  if (args.only.includes('lora')) {
    const lora = await benchLora(gpu, kernels, args.engine.shapes, args.engine.seqLen, args.repeats);
    results.push(lora);
    for (const r of lora.results) {
      summary.push(`lora ${r.shape} [${r.dims[1]} -> ${r.dims[2]}] at M ${r.dims[0]}: forward ${r.forwardMs.toFixed(3)} ms (${r.forwardGbps.toPrecision(3)} GB/s), backward ${r.backwardMs.toFixed(3)} ms (${r.backwardGbps.toPrecision(3)} GB/s)`);
    }
    for (const s of lora.stepMs) summary.push(`lora ${s.shape}: ${s.ms.toFixed(1)} ms of LoRA kernels per training step`);
    for (const d of lora.downs) summary.push(`lora ${d.shape} down [${d.dims[1]}]: SIMT ${d.simtMs.toFixed(3)} ms; f16 rows ${d.rowsMs.toFixed(3)}, +1 adapter ${d.rowsAndOneMs.toFixed(3)}, +3 ${d.rowsAndThreeMs.toFixed(3)}`);
  }
  if (args.only.includes('record')) {
    for (const shape of args.engine.shapes) {
      const r = await benchDecodeRecording(kernels, shape, args.engine);
      summary.push(`${shape}: recording a decode step ${r.greedyMs.toFixed(2)} ms of CPU, ${r.chatMs.toFixed(2)} ms with an adapter`);
      const tr = await benchTrainRecording(kernels, shape, args.engine);
      summary.push(`${shape}: recording a training step's forward ${tr.forwardMs.toFixed(2)} ms of CPU, its backward ${tr.backwardMs.toFixed(2)} ms`);
    }
  }
  if (args.only.includes('model')) {
    const f32Peak = Math.max(0, ...results.filter((r): r is MatmulResult => r.op === 'matmul' && r.dtype === 'f32').map((r) => r.tflops));
    for (const shape of args.engine.shapes) {
      const r = await benchModel(kernels, shape, args.engine);
      if (args.torchModels) addTorchModels([r], args.torchModels);
      if (f32Peak > 0) r.trainMfuOfF32Peak = r.trainModelTflops / f32Peak;
      results.push(r);
      summary.push(
        `${shape} (${r.layers} layers): prefill ${r.prefillTokensPerSecond.toFixed(0)} tok/s, decode ${r.decodeTokensPerSecond.toFixed(1)} tok/s (${r.inferenceDtype}), ` +
          (args.engine.trainSteps > 0
            ? `train ${r.trainTokensPerSecond.toFixed(0)} tok/s at seq ${r.trainSeqLen} (${r.trainModelTflops.toPrecision(3)} TFLOP/s), train peak ${(r.trainPeakBytes / 2 ** 30).toFixed(2)} GiB`
            : 'training not run (--train-steps 0)') +
          (r.trainMfuOfF32Peak !== undefined ? `, MFU ${(100 * r.trainMfuOfF32Peak).toFixed(1)}% of f32 peak` : '') +
          (r.torch ? `; vs PyTorch: prefill ${r.torch.prefillRatio.toFixed(3)}x, decode ${r.torch.decodeRatio.toFixed(3)}x, train ${r.torch.trainRatio.toFixed(3)}x` : ''),
      );
    }
  }

  if (args.only.includes('export')) {
    const ex = await benchExport(args.export, kernels);
    results.push(...ex);
    summary.push(...ex.map(describeExport));
  }

  const out = {
    date: new Date().toISOString(),
    gpu: gpu.info,
    timing: gpu.info.timestamps ? 'gpu-timestamps' : 'wall-clock',
    tensorCores: kernels.gpu.info.mmaF16,
    quick: args.quick,
    summary,
    results,
  };
  console.log('\n== summary ==');
  for (const line of summary) console.log(line);
  if (args.json) {
    writeFileSync(args.json, JSON.stringify(out, null, 2));
    console.log(`written ${args.json}`);
  } else console.log(JSON.stringify(out, null, 2));
  process.exit(0);
}

await main();
