// `--push-to-hub REPO`: the export just written (the adapter folder, the merged model or one GGUF)
// uploaded from disk into a Hub model repo with a model card (src/io/hub-upload.ts), the token from
// $HF_TOKEN, the Hub at --endpoint. One export per repo: each kind has its own card and README.
import { openAsBlob } from 'node:fs';
import { join } from 'node:path';
import type { ExportResult } from '../../src/io/export-job.ts';
import { uploadToHub, type HubCardFacts, type HubUploadResult, type UploadKind } from '../../src/io/hub-upload.ts';
import type { TuneArgs } from './args.ts';
import type { ExportSpec } from './export-specs.ts';
import { UsageError } from './flag-values.ts';
import type { Output } from './output.ts';

/** The flag checks, before any work: what to push, and the token to push with. */
export function checkPush(args: TuneArgs, token: string | undefined): void {
  if (args.pushToHub === undefined) {
    if (args.private) throw new UsageError('--private is for the repo --push-to-hub creates; give --push-to-hub REPO too.');
    return;
  }
  const models = args.exports;
  if (models.length !== 1) {
    const listed = models.length === 0 ? 'none is listed' : `${models.map((s) => s.label).join(', ')} are listed`;
    throw new UsageError(`--push-to-hub uploads one export (adapter, merged or a GGUF) to its repo, and ${listed} in --export; push others with another run (--adapter DIR exports a saved adapter).`);
  }
  if (models[0].label === 'adapter:zip') throw new UsageError('--push-to-hub uploads the adapter as PEFT\'s folder (what PeftModel.from_pretrained reads): use --export adapter.');
  if (!token) throw new UsageError('--push-to-hub needs an access token with the "write" role in the HF_TOKEN environment variable (huggingface.co/settings/tokens).');
}

export interface PushContext {
  repo: string;
  private: boolean;
  token: string;
  endpoint: string;
  /** What the card says: the base model, LoRA settings and the run's facts. */
  card: HubCardFacts;
  signal?: AbortSignal;
}

/** Uploads one export's files (as written to disk) and says where they went. */
export async function pushExport(spec: ExportSpec, result: ExportResult, ctx: PushContext, out: Output): Promise<HubUploadResult> {
  const kind: UploadKind = spec.request.kind;
  const files = await Promise.all(result.files.map(async (f) => ({ name: f.name, blob: await openAsBlob(join(result.where, f.name)) })));
  const gguf = result.files.find((f) => f.name.endsWith('.gguf'));
  const card: HubCardFacts = kind === 'gguf' && spec.request.ggufType ? { ...ctx.card, ggufType: spec.request.ggufType.toUpperCase(), ggufFile: gguf?.name } : ctx.card;
  out.say(`Uploading ${spec.label} to ${ctx.repo} on ${ctx.endpoint}…`);
  const r = await uploadToHub({
    repo: ctx.repo,
    token: ctx.token,
    files,
    kind,
    card,
    private: ctx.private,
    hubUrl: ctx.endpoint,
    signal: ctx.signal,
    onProgress: (p) => out.progress('upload', { label: spec.label, ...p }),
  });
  out.say(`Uploaded ${r.files.length} files to ${r.url}${r.created ? ' (a new repo)' : ''}: commit ${r.commit.slice(0, 10)}.`);
  return r;
}

/** The summary's "hub" entry. */
export function hubSummary(r: HubUploadResult): Record<string, unknown> {
  return { repo: r.repo, url: r.url, commit: r.commit, created: r.created, files: r.files };
}
