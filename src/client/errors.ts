import { isWireError, type WorkerName } from './api.ts';

/** An error thrown inside a worker, rebuilt on the UI thread with its name and reason. */
export class RemoteError extends Error {
  constructor(
    readonly worker: WorkerName,
    readonly method: string,
    name: string,
    message: string,
    /** NoWebGPUError's reason ('no-api' | 'no-adapter' | 'device-failed'), where there is one. */
    readonly reason?: string,
    readonly remoteStack?: string,
  ) {
    super(message);
    this.name = name;
  }
}

/** The worker stopped (uncaught error, failed to load, or restarted) while a call was pending,
 *  or a call was made after it stopped and before a restart. */
export class WorkerCrashedError extends Error {
  constructor(
    readonly worker: WorkerName,
    message: string,
  ) {
    super(message);
    this.name = 'WorkerCrashedError';
  }
}

export function toRemoteError(worker: WorkerName, method: string, thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  if (isWireError(thrown)) {
    return new RemoteError(worker, method, thrown.name, thrown.message, thrown.reason, thrown.stack);
  }
  return new RemoteError(worker, method, 'Error', String(thrown));
}

export function isNoWebGPUError(e: unknown): e is RemoteError & { reason: string } {
  return e instanceof RemoteError && e.name === 'NoWebGPUError';
}

export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}
