// Injected failures: connections cut (or stalled) after N body bytes, and 429 answers.

export interface ByteFaultSpec {
  /** Repo-relative file path, e.g. 'model.safetensors'. */
  file: string;
  /** Limit to one repo id (any repo when absent). */
  repo?: string;
  /** Body bytes sent before the cut (counted from the first byte of that response). */
  afterBytes: number;
  /** How many responses it hits (default 1). */
  times?: number;
  /** stall only: cut the connection after holding it this long (default: hold until closed). */
  holdMs?: number;
}

export interface RateLimitSpec {
  /** How many of the next matching requests answer 429 (default 1). */
  count?: number;
  retryAfterSeconds?: number;
  /** Only requests whose path starts with this, e.g. '/api/' (all when absent). */
  pathPrefix?: string;
}

export interface HttpErrorSpec {
  /** Requests whose path starts with this, e.g. '/lfs-storage/' or '/api/models/me/x/commit'. */
  pathPrefix: string;
  /** Only this method (any when absent). */
  method?: string;
  status: number;
  /** The error message (default: "injected failure"). */
  message?: string;
  /** How many requests it hits (default 1). */
  times?: number;
}

/** Body of POST /__mock/faults, and the `faults` start option. */
export interface FaultsSpec {
  drop?: ByteFaultSpec | ByteFaultSpec[];
  stall?: ByteFaultSpec | ByteFaultSpec[];
  /** Answer 200 with the whole file despite a Range header (as some proxies do). */
  ignoreRange?: Omit<ByteFaultSpec, 'afterBytes'> | Omit<ByteFaultSpec, 'afterBytes'>[];
  rateLimit?: RateLimitSpec | RateLimitSpec[];
  /** Answer matching requests with an error status (uploads, commits, ...). */
  httpError?: HttpErrorSpec | HttpErrorSpec[];
}

type ByteFaultKind = 'drop' | 'stall' | 'ignore-range';

export interface ByteFault {
  kind: ByteFaultKind;
  afterBytes: number;
  holdMs?: number;
}

interface Armed<T> {
  spec: T;
  left: number;
}

const list = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

export class Faults {
  private bytes: Armed<ByteFaultSpec & { kind: ByteFaultKind }>[] = [];
  private limits: Armed<RateLimitSpec>[] = [];
  private errors: Armed<HttpErrorSpec>[] = [];

  /** Cut the connection (FIN) after `afterBytes` body bytes. */
  drop(spec: ByteFaultSpec): void {
    this.bytes.push({ spec: { ...spec, kind: 'drop' }, left: spec.times ?? 1 });
  }

  /** Send `afterBytes` body bytes, then hold the connection open without sending more. */
  stall(spec: ByteFaultSpec): void {
    this.bytes.push({ spec: { ...spec, kind: 'stall' }, left: spec.times ?? 1 });
  }

  /** Answer the next request(s) for the file with 200 and all of it, ignoring Range. */
  ignoreRange(spec: Omit<ByteFaultSpec, 'afterBytes'>): void {
    this.bytes.push({ spec: { ...spec, afterBytes: 0, kind: 'ignore-range' }, left: spec.times ?? 1 });
  }

  rateLimit(spec: RateLimitSpec = {}): void {
    this.limits.push({ spec, left: spec.count ?? 1 });
  }

  httpError(spec: HttpErrorSpec): void {
    this.errors.push({ spec, left: spec.times ?? 1 });
  }

  apply(spec: FaultsSpec): void {
    for (const s of list(spec.drop)) this.drop(s);
    for (const s of list(spec.stall)) this.stall(s);
    for (const s of list(spec.ignoreRange)) this.ignoreRange(s);
    for (const s of list(spec.rateLimit)) this.rateLimit(s);
    for (const s of list(spec.httpError)) this.httpError(s);
  }

  clear(): void {
    this.bytes = [];
    this.limits = [];
    this.errors = [];
  }

  /** The injected error for this request, consumed. */
  takeHttpError(method: string, pathname: string): { status: number; message: string } | undefined {
    const i = this.errors.findIndex((a) => pathname.startsWith(a.spec.pathPrefix) && (!a.spec.method || a.spec.method === method));
    if (i < 0) return undefined;
    const armed = this.errors[i];
    if (--armed.left <= 0) this.errors.splice(i, 1);
    return { status: armed.spec.status, message: armed.spec.message ?? 'injected failure' };
  }

  /** The fault for one response serving `path` of `repo`, consumed. */
  takeByteFault(repo: string, path: string): ByteFault | undefined {
    const i = this.bytes.findIndex((a) => a.spec.file === path && (!a.spec.repo || a.spec.repo === repo));
    if (i < 0) return undefined;
    const armed = this.bytes[i];
    if (--armed.left <= 0) this.bytes.splice(i, 1);
    return { kind: armed.spec.kind, afterBytes: Math.max(0, armed.spec.afterBytes), holdMs: armed.spec.holdMs };
  }

  /** Retry-After seconds when this request must answer 429, consumed. */
  takeRateLimit(pathname: string): number | undefined {
    const i = this.limits.findIndex((a) => !a.spec.pathPrefix || pathname.startsWith(a.spec.pathPrefix));
    if (i < 0) return undefined;
    const armed = this.limits[i];
    if (--armed.left <= 0) this.limits.splice(i, 1);
    return armed.spec.retryAfterSeconds ?? 1;
  }
}
