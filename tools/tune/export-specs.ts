// `--export adapter,merged,merged:f16,gguf:q4_k_m,…` as export requests (src/io/export-job.ts).
// On disk the adapter is a PEFT folder by default (what PeftModel.from_pretrained reads), or
// `adapter:zip` for the Export tab's single .zip. `bundle` (a .zip) or `bundle:folder` is the run
// bundle (src/io/run-bundle.ts): not a model export, so it is kept apart from the specs.
import { GGUF_EXPORT_TYPES, isGgufExportType, RECOMMENDED_GGUF_TYPE, type ExportRequest } from '../../src/io/export-job.ts';
import { UsageError } from './flag-values.ts';

export interface ExportSpec {
  /** As written on the command line, normalised (e.g. "gguf:q8_0"). */
  label: string;
  request: ExportRequest;
}

export type BundleLayout = 'zip' | 'folder';

export interface ExportList {
  specs: ExportSpec[];
  bundle: BundleLayout | null;
}

export const EXPORT_FORMS = ['adapter', 'adapter:zip', 'merged', 'merged:bf16', 'merged:f16', 'gguf', ...GGUF_EXPORT_TYPES.map((t) => `gguf:${t}`), 'bundle', 'bundle:folder'];

function parseOne(item: string): ExportSpec {
  const [kind, type, ...rest] = item.toLowerCase().split(':');
  const bad = (): never => {
    throw new UsageError(`--export: "${item}" is not an export; use ${EXPORT_FORMS.join(', ')}.`);
  };
  if (rest.length > 0) bad();
  switch (kind) {
    case 'adapter':
      if (type === undefined || type === 'folder') return { label: 'adapter', request: { kind: 'adapter', adapterLayout: 'folder' } };
      if (type === 'zip') return { label: 'adapter:zip', request: { kind: 'adapter', adapterLayout: 'zip' } };
      return bad();
    case 'merged':
      if (type === undefined || type === 'bf16' || type === 'bfloat16') return { label: 'merged:bf16', request: { kind: 'merged', dtype: 'bfloat16' } };
      if (type === 'f16' || type === 'float16') return { label: 'merged:f16', request: { kind: 'merged', dtype: 'float16' } };
      return bad();
    case 'gguf': {
      const t = type ?? RECOMMENDED_GGUF_TYPE;
      if (!isGgufExportType(t)) throw new UsageError(`--export: GGUF type "${type}" is not offered; use one of ${GGUF_EXPORT_TYPES.join(', ')}.`);
      return { label: `gguf:${t}`, request: { kind: 'gguf', ggufType: t } };
    }
    default:
      return bad();
  }
}

function parseBundle(item: string): BundleLayout | null {
  const [kind, layout, ...rest] = item.toLowerCase().split(':');
  if (kind !== 'bundle') return null;
  if (rest.length === 0 && (layout === undefined || layout === 'zip')) return 'zip';
  if (rest.length === 0 && layout === 'folder') return 'folder';
  throw new UsageError(`--export: "${item}" is not a run bundle; use bundle (a .zip) or bundle:folder.`);
}

export function parseExportList(raw: string): ExportList {
  const items = raw.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new UsageError(`--export wants a comma-separated list such as adapter,gguf:q4_k_m; got "${raw}".`);
  const bundles = items.map(parseBundle).filter((b): b is BundleLayout => b !== null);
  if (bundles.length > 1) throw new UsageError('--export lists the run bundle twice.');
  const specs = items.filter((i) => parseBundle(i) === null).map(parseOne);
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.label)) throw new UsageError(`--export lists ${s.label} twice.`);
    seen.add(s.label);
  }
  return { specs, bundle: bundles[0] ?? null };
}
