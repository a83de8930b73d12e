// What an export's model card says about the run that made the adapter: the settings under
// transformers' TrainingArguments names, the dataset, and the losses (about ten rows of them).
import type { PreparedManifest } from '../../src/data/store.ts';
import type { StepMetrics, TrainSettings } from '../../src/engine/train/loop.ts';
import type { ExportCardFacts } from '../../src/io/export-job.ts';

const LOSS_ROWS = 10;

export function cardFacts(settings: TrainSettings, metrics: readonly StepMetrics[], dataset: PreparedManifest, evalLoss?: number): ExportCardFacts {
  const good = metrics.filter((m) => !m.skipped && Number.isFinite(m.loss));
  const stride = Math.max(1, Math.ceil(good.length / LOSS_ROWS));
  const last = metrics.at(-1);
  return {
    datasets: [dataset.name],
    training: {
      learning_rate: settings.learningRate,
      lr_scheduler_type: settings.schedule,
      warmup_steps: settings.warmupSteps ?? null,
      per_device_train_batch_size: settings.batchSize,
      gradient_accumulation_steps: settings.gradAccum,
      ...(settings.maxSteps !== undefined ? { max_steps: settings.maxSteps } : { num_train_epochs: settings.epochs ?? 1 }),
      optim: settings.optimizer,
      weight_decay: settings.weightDecay,
      max_grad_norm: settings.maxGradNorm,
      seed: settings.seed,
      max_seq_length: dataset.options.maxSeqLength,
      packing: dataset.options.packing,
    },
    ...(last ? { steps: last.step } : {}),
    ...(good.length > 0
      ? {
          finalLoss: good[good.length - 1].loss,
          losses: good.filter((_, i) => i % stride === 0 || i === good.length - 1).map((m) => ({ step: m.step, loss: m.loss })),
        }
      : {}),
    ...(evalLoss !== undefined ? { finalEvalLoss: evalLoss } : {}),
  };
}
