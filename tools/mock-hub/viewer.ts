// datasets-server.huggingface.co routes (served under /datasets-server): /splits, /rows,
// /first-rows, /parquet, /is-valid; rows come from the dataset's refs/convert/parquet branch.
import type { Ctx } from './context.ts';
import { sendError, sendJson } from './http.ts';
import { PARQUET_BRANCH, parquetSplits, readSplit } from './parquet.ts';
import type { SplitFiles } from './parquet.ts';
import type { Repo } from './repos.ts';

export const VIEWER_PREFIX = 'datasets-server';
const MAX_ROWS = 100;

/** The viewer hides whether a dataset exists: one message for missing, private and gated. */
function noAccess(ctx: Ctx): void {
  if (ctx.token) {
    sendError(
      ctx.res,
      404,
      'ExternalAuthenticatedError',
      'The dataset does not exist, or is not accessible with the current credentials (private or gated). Please check the spelling of the dataset name or retry with other authentication credentials.',
    );
  } else {
    sendError(
      ctx.res,
      401,
      'ExternalUnauthenticatedError',
      'The dataset does not exist, or is not accessible without authentication (private or gated). Please check the spelling of the dataset name or retry with authentication.',
    );
  }
}

function canRead(ctx: Ctx, repo: Repo | undefined): repo is Repo {
  if (!repo) return false;
  if (repo.meta.private && !ctx.grant?.readPrivate) return false;
  return !(repo.meta.gated && !ctx.grant?.acceptedGated);
}

function intParam(ctx: Ctx, name: string, fallback: number): number | undefined {
  const raw = ctx.url.searchParams.get(name);
  if (raw === null || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) {
    sendError(ctx.res, 422, 'InvalidParameter', `Parameter '${name}' must be positive`);
    return undefined;
  }
  return n;
}

function findSplit(ctx: Ctx, splits: SplitFiles[]): SplitFiles | undefined {
  const config = ctx.url.searchParams.get('config');
  const split = ctx.url.searchParams.get('split');
  if (!config || !split) {
    sendError(ctx.res, 422, 'MissingRequiredParameter', "Parameter 'dataset', 'config' and 'split' are required");
    return undefined;
  }
  const s = splits.find((x) => x.config === config && x.split === split);
  if (!s) sendError(ctx.res, 404, 'ResponseNotFound', 'Not found.');
  return s;
}

async function rows(ctx: Ctx, dataset: string, splits: SplitFiles[], first: boolean): Promise<void> {
  const s = findSplit(ctx, splits);
  if (!s) return;
  const offset = first ? 0 : intParam(ctx, 'offset', 0);
  const length = first ? MAX_ROWS : intParam(ctx, 'length', MAX_ROWS);
  if (offset === undefined || length === undefined) return;
  if (length > MAX_ROWS) {
    sendError(ctx.res, 422, 'InvalidParameter', `Parameter 'length' must not be greater than ${MAX_ROWS}`);
    return;
  }
  const data = await readSplit(s);
  const page = data.rows.slice(offset, offset + length).map((row, i) => ({
    row_idx: offset + i,
    row,
    truncated_cells: [],
  }));
  if (first) {
    sendJson(ctx.res, 200, { dataset, config: s.config, split: s.split, features: data.features, rows: page, truncated: false });
    return;
  }
  sendJson(ctx.res, 200, {
    features: data.features,
    rows: page,
    num_rows_total: data.rows.length,
    num_rows_per_page: MAX_ROWS,
    partial: s.partial,
  });
}

function parquetList(ctx: Ctx, dataset: string, splits: SplitFiles[]): void {
  const config = ctx.url.searchParams.get('config');
  const split = ctx.url.searchParams.get('split');
  const chosen = splits.filter((s) => (!config || s.config === config) && (!split || s.split === split));
  if ((config || split) && chosen.length === 0) {
    sendError(ctx.res, 404, 'ResponseNotFound', 'Not found.');
    return;
  }
  const hub = ctx.base; // the mock serves the Hub and the viewer from one origin
  const parquet_files = chosen.flatMap((s) =>
    s.files.map((f) => ({
      dataset,
      config: s.config,
      split: s.split,
      url: `${hub}/datasets/${dataset}/resolve/${encodeURIComponent(PARQUET_BRANCH)}/${f.path.split('/').map(encodeURIComponent).join('/')}`,
      filename: f.path.split('/').pop(),
      size: f.size,
    })),
  );
  sendJson(ctx.res, 200, { parquet_files, pending: [], failed: [], partial: chosen.some((s) => s.partial) });
}

/** Handles /datasets-server/{endpoint}?dataset=...; segs excludes the prefix. */
export async function routeViewer(ctx: Ctx, segs: string[]): Promise<void> {
  const endpoint = segs.join('/');
  const known = ['splits', 'rows', 'first-rows', 'parquet', 'is-valid'];
  if (!known.includes(endpoint)) {
    sendError(ctx.res, 404, 'UnexpectedError', 'Not Found');
    return;
  }
  const dataset = ctx.url.searchParams.get('dataset');
  if (!dataset) {
    sendError(ctx.res, 422, 'MissingRequiredParameter', "Parameter 'dataset' is required");
    return;
  }
  const repo = ctx.store.get('dataset', dataset);
  if (endpoint === 'is-valid' && repo && !repo.meta.private && repo.meta.gated && !ctx.grant?.acceptedGated) {
    sendJson(ctx.res, 200, { preview: false, viewer: false, search: false, filter: false, statistics: false });
    return;
  }
  if (!canRead(ctx, repo)) {
    noAccess(ctx);
    return;
  }
  const splits = parquetSplits(repo);
  if (endpoint === 'is-valid') {
    const ok = !!splits && splits.length > 0;
    sendJson(ctx.res, 200, { preview: ok, viewer: ok, search: false, filter: false, statistics: false });
    return;
  }
  if (!splits || splits.length === 0) {
    sendError(ctx.res, 404, 'ResponseNotFound', 'Not found.');
    return;
  }
  if (endpoint === 'splits') {
    const list = splits.map((s) => ({ dataset, config: s.config, split: s.split }));
    sendJson(ctx.res, 200, { splits: list, pending: [], failed: [] });
  } else if (endpoint === 'parquet') {
    parquetList(ctx, dataset, splits);
  } else {
    await rows(ctx, dataset, splits, endpoint === 'first-rows');
  }
}
