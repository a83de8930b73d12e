// Response helpers shared by the Hub and dataset-viewer routes: CORS, JSON, errors, byte ranges.
import { createReadStream } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ByteFault } from './faults.ts';

/** Headers a browser page may read (fetch hides the rest of a cross-origin response). */
export const EXPOSED_HEADERS = [
  'Accept-Ranges',
  'Content-Length',
  'Content-Range',
  'Content-Type',
  'ETag',
  'Link',
  'Location',
  'RateLimit',
  'RateLimit-Policy',
  'Retry-After',
  'X-Error-Code',
  'X-Error-Message',
  'X-Linked-Etag',
  'X-Linked-Size',
  'X-Repo-Commit',
].join(', ');

export function setCors(res: ServerResponse): void {
  res.setHeader('Access-Control-Allow-Origin', '*');
  res.setHeader('Access-Control-Expose-Headers', EXPOSED_HEADERS);
}

export function preflight(req: IncomingMessage, res: ServerResponse): void {
  // `*` in Allow-Headers does not cover Authorization, so name it and echo what was asked.
  const asked = req.headers['access-control-request-headers'];
  const allow = ['Authorization', 'Range', 'If-Range', 'Content-Type', ...(asked ? [asked] : [])].join(', ');
  res.writeHead(204, {
    'Access-Control-Allow-Methods': 'GET, HEAD, POST, PUT, DELETE, OPTIONS',
    'Access-Control-Allow-Headers': allow,
    'Access-Control-Max-Age': '86400',
    'Content-Length': '0',
  });
  res.end();
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

/** Hub-style error: X-Error-Code (when the Hub sends one), X-Error-Message, JSON {error}. */
export function sendError(
  res: ServerResponse,
  status: number,
  code: string | undefined,
  message: string,
  headers: Record<string, string> = {},
): void {
  sendJson(res, status, { error: message }, { ...(code ? { 'X-Error-Code': code } : {}), 'X-Error-Message': message, ...headers });
}

export function contentType(path: string): string {
  if (/\.json$/i.test(path)) return 'application/json; charset=utf-8';
  if (/\.(md|txt|jsonl|gitattributes|py|jinja)$/i.test(path)) {
    return 'text/plain; charset=utf-8';
  }
  return 'application/octet-stream';
}

type Range = { start: number; end: number } | 'unsatisfiable' | undefined;

/** One `bytes=` range against a file of `size` bytes (multi-range and junk are ignored: 200). */
export function parseRange(header: string | undefined, size: number): Range {
  const m = header?.trim().match(/^bytes=(\d*)-(\d*)$/);
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]); // suffix: last n bytes
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

/**
 * Streams a file or one range of it, honouring If-Range, with an optional injected fault that cuts
 * (FIN after the bytes are flushed) or stalls the body after `afterBytes` bytes, or ignores Range.
 */
export function sendFileBytes(
  req: IncomingMessage,
  res: ServerResponse,
  file: { abs: string; size: number; path: string },
  headers: Record<string, string>,
  fault: ByteFault | undefined,
): void {
  const base = { 'Accept-Ranges': 'bytes', 'Content-Type': contentType(file.path), ...headers };
  let range = parseRange(req.headers.range, file.size);
  const ifRange = req.headers['if-range'];
  if (range && ifRange && ifRange !== headers.ETag) range = undefined; // changed: whole file
  if (fault?.kind === 'ignore-range') range = undefined;
  const cut = fault?.kind === 'ignore-range' ? undefined : fault;
  if (range === 'unsatisfiable') {
    sendError(res, 416, undefined, 'Requested Range Not Satisfiable', { 'Content-Range': `bytes */${file.size}` });
    return;
  }
  const start = range ? range.start : 0;
  const end = range ? range.end : file.size - 1;
  const length = Math.max(0, end - start + 1);
  res.writeHead(range ? 206 : 200, {
    ...base,
    'Content-Length': String(length),
    ...(range ? { 'Content-Range': `bytes ${start}-${end}/${file.size}` } : {}),
  });
  if (req.method === 'HEAD' || length === 0) {
    res.end();
    return;
  }
  if (!cut) {
    createReadStream(file.abs, { start, end }).pipe(res);
    return;
  }
  const sent = Math.min(cut.afterBytes, length);
  const after = (): void => {
    const socket = res.socket;
    if (cut.kind === 'drop') socket?.end(); // the client sees fewer bytes than Content-Length
    else if (cut.holdMs !== undefined) setTimeout(() => socket?.end(), cut.holdMs).unref();
  };
  if (sent === 0) {
    res.flushHeaders();
    setImmediate(after);
    return;
  }
  const stream = createReadStream(file.abs, { start, end: start + sent - 1 });
  const chunks: Buffer[] = [];
  stream.on('data', (c) => chunks.push(c as Buffer));
  stream.on('end', () => res.write(Buffer.concat(chunks), after));
}
