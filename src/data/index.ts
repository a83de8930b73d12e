// Public surface of the data pipeline: records -> messages -> chat template -> tokens -> packed rows.

export type { DataRecord, Example, Message, Outcome, Role, SourceRecord, TokenizedExample } from './types.ts';
export { IssueLog } from './issues.ts';
export type { IssueExample, IssueSummary } from './issues.ts';
export { bytesToStream, decodeUtf8 } from './text-stream.ts';
export { readJsonl } from './jsonl.ts';
export { JsonArrayError, readJsonArray } from './json-array.ts';
export { blobAsyncBuffer, parquetInfo, readParquet } from './parquet.ts';
export type { AsyncBuffer, BlobLike, ParquetInfo } from './parquet.ts';
export { readRecords, sniffFileKind, takeRecords } from './source.ts';
export type { FileKind, FileLike } from './source.ts';
export { DEFAULT_ROLE_MAP, detectFormat, normalizeRecord } from './formats.ts';
export type { AlpacaMapping, ConversationMapping, FormatCandidate, FormatDetection, FormatKind, FormatMapping, RoleMap, TextMapping } from './formats.ts';
export { BUILTIN_TEMPLATES, renderChat, resolveTemplate, TemplateError } from './templates.ts';
export type { EffectiveTemplate, TemplateId, TokenizerFacts } from './templates.ts';
export { readTokenizerInfo } from './tokenizer-info.ts';
export type { TokenizerInfo, TokenizerLike } from './tokenizer-info.ts';
export { encodePrompt, renderWithSpans, tokenizeExample } from './tokenize.ts';
export type { TokenizeContext, TokenizeOptions, TokenizeResult } from './tokenize.ts';
export { packExamples, packStats, RowPacker } from './pack.ts';
export type { PackedRow, PackInput, PackOptions, PackStats } from './pack.ts';
export { rng as seededRandom, seededPermutation, shuffleInPlace } from '../util/random.ts';
export { TokenStatsAccumulator } from './stats.ts';
export type { DataStats, LengthHistogram, TokenStats } from './stats.ts';
export { tokenizeRecords } from './pipeline.ts';
export type { PrepareContext } from './pipeline.ts';
