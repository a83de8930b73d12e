// A source -> a prepared dataset in the store: records -> normalised -> templated -> tokens with
// loss masks -> chunks packed into shards. Chunks are cut at a token budget, and each one is
// shuffled and packed on its own (chunk.ts), so a run that stops (cancel, reload, full disk)
// resumes after its last stored shard and ends with exactly the bytes of an uninterrupted run.

import { addPackStats, buildChunk, emptyPackStats } from './chunk.ts';
import type { BuiltChunk, ChunkExample } from './chunk.ts';
import { abortError, DataError, noFormatMessage } from './errors.ts';
import { fingerprint, templateKey } from './fingerprint.ts';
import type { FingerprintKey } from './fingerprint.ts';
import { detectFormat } from './formats.ts';
import type { FormatMapping } from './formats.ts';
import { IssueLog } from './issues.ts';
import type { IssueSink, IssueSummary } from './issues.ts';
import { checkOptions, DEFAULT_PREPARE_OPTIONS, DEFAULT_SHARD_TOKENS } from './prepare-options.ts';
import type { PrepareOptions } from './prepare-options.ts';
import { ProgressMeter } from './progress.ts';
import type { Counters, PrepareProgress } from './progress.ts';
import type { RecordSource } from './record-source.ts';
import { MANIFEST_VERSION } from './store.ts';
import type { PreparedManifest, PreparedStore } from './store.ts';
import { TokenStatsAccumulator } from './stats.ts';
import type { TokenStats } from './stats.ts';
import { resolveTemplate, TemplateError } from './templates.ts';
import type { EffectiveTemplate } from './templates.ts';
import type { LoadedTokenizer } from './tokenizer-load.ts';
import { tokenizeRecords } from './pipeline.ts';
import type { PrepareContext } from './pipeline.ts';
import { inlineExecutor } from './tokenize-batch.ts';
import type { TokenizeExecutor } from './tokenize-batch.ts';
import { setupOf } from './tokenize-pool.ts';
import type { TokenizeSetup } from './tokenize-pool.ts';
import type { TokenizeOptions } from './tokenize.ts';
import type { ReadPosition } from './types.ts';
import { formatBytes } from '../util/format.ts';

export interface PrepareDeps {
  store: PreparedStore;
  tokenizer: LoadedTokenizer;
  signal?: AbortSignal;
  /** Called a few times a second; after each stored shard it is awaited before going on, so
   *  that a cancel issued from that report stops the preparation right there. */
  onProgress?: (p: PrepareProgress) => unknown;
  /** Tokenize workers for this preparation (default: tokenize in this thread). Closed at the end. */
  tokenizeWith?: (setup: TokenizeSetup) => Promise<TokenizeExecutor>;
  /** Minimum time between progress reports (default 250 ms). */
  progressIntervalMs?: number;
  now?: () => number;
  /** Stored with the manifest as is (plain data): how to start this preparation again. */
  origin?: unknown;
}

/** Fine bins: the Data tab trims the empty tail and merges bins for display. */
const HISTOGRAM_BINS = 128;

/** Records looked at to detect the format. */
export const DETECT_RECORDS = 100;

export async function prepareDataset(source: RecordSource, options: PrepareOptions, deps: PrepareDeps): Promise<PreparedManifest> {
  const opts = { ...DEFAULT_PREPARE_OPTIONS, ...options };
  checkOptions(opts);
  const { store, tokenizer, signal } = deps;
  const now = deps.now ?? Date.now;
  const meter = new ProgressMeter(source, deps.onProgress, deps.progressIntervalMs ?? 250, now);
  const zero: Counters = { examples: 0, skipped: 0, tokens: 0, trainedTokens: 0, rows: 0, shards: 0, units: 0 };
  meter.tick('detecting', () => zero, true);

  const template = effectiveTemplate(opts, tokenizer);
  const mapping = opts.mapping ?? (await detectMapping(source, signal));
  const shardTokens = opts.shardTokens ?? DEFAULT_SHARD_TOKENS;
  const key: FingerprintKey = {
    version: 1,
    source: source.info.identity,
    mapping,
    tokenizer: `${tokenizer.id}#${tokenizer.digest}`,
    template: templateKey(template),
    maxSeqLength: opts.maxSeqLength,
    overflow: opts.overflow,
    packing: opts.packing,
    trainOnResponsesOnly: opts.trainOnResponsesOnly,
    validationFraction: opts.validationFraction,
    seed: opts.seed,
    shardTokens,
  };
  const fp = await fingerprint(key);
  meter.fingerprint = fp;

  const stored = await store.manifest(fp);
  if (stored?.status === 'complete') {
    deps.onProgress?.(meter.snapshot('cached', countersOf(stored)));
    return stored;
  }
  let manifest: PreparedManifest = stored ?? newManifest(fp, key, source, mapping, template, tokenizer, opts, shardTokens, now());
  if (deps.origin !== undefined) manifest = { ...manifest, origin: deps.origin };
  meter.resumedShards = manifest.shards.length;

  const tokenizeOptions: TokenizeOptions = { maxSeqLength: opts.maxSeqLength, trainOnResponsesOnly: opts.trainOnResponsesOnly, overflow: opts.overflow };
  const ctx = { tokenizer: tokenizer.tokenizer, info: tokenizer.info, template };
  const executor = deps.tokenizeWith ? await deps.tokenizeWith(setupOf(tokenizer, template, tokenizeOptions)) : inlineExecutor(ctx, tokenizeOptions);
  try {
    return await readIntoShards(source, manifest, { ...ctx, mapping, options: tokenizeOptions, executor }, opts, deps, meter);
  } finally {
    executor.close();
  }
}

/** Reads the source from the manifest's cursor to its end, committing a shard per full chunk. */
async function readIntoShards(
  source: RecordSource,
  start: PreparedManifest,
  tokenize: Omit<PrepareContext, 'issues' | 'stats'>,
  opts: PrepareOptions,
  deps: PrepareDeps,
  meter: ProgressMeter,
): Promise<PreparedManifest> {
  const { store, signal } = deps;
  const now = deps.now ?? Date.now;
  const shardTokens = start.options.shardTokens;
  let manifest = start;
  const issues = IssueLog.fromSummary(manifest.stats.skipped);
  const stats = TokenStatsAccumulator.restore(manifest.cursor.tokenStats);
  const position: ReadPosition = { units: manifest.cursor.units };
  /** Source units consumed by the examples taken so far (the reader may be further ahead). */
  let consumed = position.units;
  const counters = (): Counters => {
    const t = stats.state();
    return {
      examples: t.examples,
      skipped: issues.total,
      tokens: t.tokens,
      trainedTokens: t.trained,
      rows: manifest.stats.train.rows + manifest.stats.validation.rows,
      shards: manifest.shards.length,
      units: position.units,
    };
  };
  meter.begin(counters());

  let chunk: ChunkExample[] = [];
  let chunkTokens = 0;
  const full = (): boolean => (opts.packing ? chunkTokens : chunk.length * opts.maxSeqLength) >= shardTokens;

  const commit = async (final: boolean): Promise<void> => {
    const index = manifest.shards.length;
    const summary = issues.summary();
    const tokenStats = stats.summary();
    if (final && tokenStats.examples === 0) throw noRecords(source, summary);
    const built =
      chunk.length > 0
        ? buildChunk(chunk, {
            seed: opts.seed,
            chunkIndex: index,
            validationFraction: opts.validationFraction,
            maxSeqLength: opts.maxSeqLength,
            packing: opts.packing,
            padId: tokenize.info.padId,
          })
        : null;
    const cursor = { units: final ? position.units : consumed, tokenStats: stats.state() };
    const next = advance(manifest, built, cursor, summary, tokenStats, final, now());
    try {
      await store.commit(next, built ? index : null, built ? { train: built.train, validation: built.validation } : {});
    } catch (e) {
      if (isQuotaError(e)) throw quotaError(manifest, built?.bytes ?? 0, meter.snapshot('reading', counters()).fraction);
      throw e;
    }
    manifest = next;
    chunk = [];
    chunkTokens = 0;
  };

  let lastYield = now();
  const read = (sink: IssueSink) => source.read({ skip: position.units, issues: sink, position, signal });
  for await (const { example, unit } of tokenizeRecords(read, { ...tokenize, issues, stats }, position)) {
    if (signal?.aborted) throw abortError(signal);
    chunk.push({ example, unit });
    chunkTokens += example.input_ids.length;
    consumed = unit;
    if (full()) {
      await commit(false);
      // Every stored shard is reported and the report awaited: a cancel sent from it stops here.
      await meter.checkpoint('reading', counters());
      if (signal?.aborted) throw abortError(signal);
    } else meter.tick('reading', counters);
    // Let the worker see messages (a cancel) while a decoded row group is being tokenized.
    if (now() - lastYield > 50) {
      await new Promise((r) => setTimeout(r, 0));
      lastYield = now();
    }
  }
  if (signal?.aborted) throw abortError(signal);
  await commit(true);
  deps.onProgress?.(meter.snapshot('done', counters()));
  return manifest;
}

/** The manifest after one more shard (or none, at the end): counts, cursor and status. */
function advance(
  m: PreparedManifest,
  built: BuiltChunk | null,
  cursor: PreparedManifest['cursor'],
  skipped: IssueSummary,
  tokens: TokenStats,
  final: boolean,
  at: number,
): PreparedManifest {
  return {
    ...m,
    status: final ? 'complete' : 'partial',
    updatedAt: at,
    shards: built ? [...m.shards, { trainRows: built.train.rows, validationRows: built.validation.rows, bytes: built.bytes }] : m.shards,
    cursor,
    stats: {
      records: tokens.examples + skipped.total,
      examples: tokens.examples,
      skipped,
      tokens,
      train: built ? addPackStats(m.stats.train, built.trainStats) : m.stats.train,
      validation: built ? addPackStats(m.stats.validation, built.validationStats) : m.stats.validation,
      bytes: m.stats.bytes + (built?.bytes ?? 0),
    },
  };
}

function effectiveTemplate(opts: PrepareOptions, tokenizer: LoadedTokenizer): EffectiveTemplate {
  try {
    return resolveTemplate(opts.template, tokenizer.info, { source: opts.templateSource });
  } catch (e) {
    if (e instanceof TemplateError) throw new DataError('options', e.message);
    throw e;
  }
}

/** The mapping detected from the first records, or an error that says what was found. */
export async function detectMapping(source: RecordSource, signal?: AbortSignal): Promise<FormatMapping> {
  const issues = new IssueLog(5);
  const head = await source.head(DETECT_RECORDS, issues, signal);
  const detection = detectFormat(head.map((r) => r.value));
  if (detection.mapping) return detection.mapping;
  if (head.length === 0) throw noRecords(source, issues.summary());
  throw new DataError('no-format', noFormatMessage(detection.columns.length > 0 ? detection.columns : (source.info.columns ?? [])));
}

function noRecords(source: RecordSource, skipped: IssueSummary): DataError {
  if (skipped.total === 0) return new DataError('no-records', `${source.info.label} has no records.`);
  const reasons = Object.entries(skipped.byReason)
    .map(([r, n]) => `${r}: ${n}`)
    .join(', ');
  const first = skipped.examples
    .slice(0, 3)
    .map((e) => `${e.where}: ${e.reason}${e.detail ? ` (${e.detail})` : ''}`)
    .join('; ');
  return new DataError('no-records', `No usable records in ${source.info.label}: ${skipped.total} skipped (${reasons}). First: ${first}.`);
}

function newManifest(
  fp: string,
  key: FingerprintKey,
  source: RecordSource,
  mapping: FormatMapping,
  template: EffectiveTemplate,
  tokenizer: LoadedTokenizer,
  opts: PrepareOptions,
  shardTokens: number,
  at: number,
): PreparedManifest {
  const stats = new TokenStatsAccumulator(opts.maxSeqLength, HISTOGRAM_BINS);
  return {
    version: MANIFEST_VERSION,
    fingerprint: fp,
    key,
    name: source.info.label,
    source: source.info,
    format: mapping,
    template: { id: template.id, endOfTurn: template.endOfTurn, warnings: template.warnings },
    tokenizer: { id: tokenizer.id, digest: tokenizer.digest, padId: tokenizer.info.padId, bosId: tokenizer.info.bosId, eosId: tokenizer.info.eosId },
    options: {
      template: opts.template,
      trainOnResponsesOnly: opts.trainOnResponsesOnly,
      maxSeqLength: opts.maxSeqLength,
      overflow: opts.overflow,
      packing: opts.packing,
      validationFraction: opts.validationFraction,
      seed: opts.seed,
      shardTokens,
    },
    status: 'partial',
    createdAt: at,
    updatedAt: at,
    shards: [],
    stats: {
      records: 0,
      examples: 0,
      skipped: { total: 0, byReason: {}, examples: [] },
      tokens: stats.summary(),
      train: emptyPackStats(),
      validation: emptyPackStats(),
      bytes: 0,
    },
    cursor: { units: 0, tokenStats: stats.state() },
  };
}

function countersOf(m: PreparedManifest): Counters {
  return {
    examples: m.stats.examples,
    skipped: m.stats.skipped.total,
    tokens: m.stats.tokens.tokens,
    trainedTokens: m.stats.tokens.trainedTokens,
    rows: m.stats.train.rows + m.stats.validation.rows,
    shards: m.shards.length,
    units: m.cursor.units,
  };
}

function isQuotaError(e: unknown): boolean {
  const err = e as { name?: string; message?: string } | null;
  return err?.name === 'QuotaExceededError' || /quota/i.test(err?.message ?? '');
}


function quotaError(m: PreparedManifest, pending: number, fraction: number | null): DataError {
  const stored = m.stats.bytes;
  let more = `at least ${formatBytes(pending)} more is needed`;
  if (fraction !== null && fraction > 0 && fraction < 1) {
    const total = (stored + pending) / fraction;
    more = `about ${formatBytes(Math.max(pending, total - stored))} more is needed to finish`;
  }
  return new DataError(
    'quota',
    `The browser's storage is full. ${m.shards.length} shards (${formatBytes(stored)}) of ${m.name} are stored and kept; ${more}. ` +
      'Delete prepared datasets you no longer need (or free disk space), then press Prepare again: it continues from the stored shards.',
  );
}
