// Shared by both workers: expose an API object with comlink so that errors keep their fields.
// comlink's own error transfer keeps only name, message and stack; every method here rethrows a
// plain WireError ({ name, message, reason, stack }) that the client turns back into an Error.
import * as Comlink from 'comlink';
import type { CrashMode, WireError } from '../src/client/api.ts';

export function toWireError(e: unknown): WireError {
  if (e instanceof Error) {
    const reason = (e as { reason?: unknown }).reason;
    return {
      webtuneError: true,
      name: e.name,
      message: e.message,
      ...(typeof reason === 'string' ? { reason } : {}),
      ...(e.stack ? { stack: e.stack } : {}),
    };
  }
  return { webtuneError: true, name: 'Error', message: String(e) };
}

type AsyncApi = Record<string, (...args: never[]) => Promise<unknown>>;

export function exposeApi<Api extends object>(api: Api): void {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(api as AsyncApi)) {
    wrapped[name] = async (...args: never[]) => {
      try {
        return await fn(...args);
      } catch (e) {
        throw toWireError(e);
      }
    };
  }
  Comlink.expose(wrapped);
}

/** The crash(mode) both workers offer, for testing how the UI handles failure. */
export async function crash(worker: string, mode: CrashMode): Promise<void> {
  if (mode === 'throw') throw new Error(`The ${worker} worker threw on purpose (crash('throw')).`);
  if (mode === 'die') {
    setTimeout(() => {
      throw new Error(`The ${worker} worker died on purpose (crash('die')).`);
    });
    return;
  }
  throw new Error(`crash(): unknown mode ${JSON.stringify(mode)}; use 'throw' or 'die'.`);
}
