// Per-request state and the Hub's access rules (missing, private and gated repos).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Faults } from './faults.ts';
import { sendError } from './http.ts';
import type { Repo, RepoStore, RepoType } from './repos.ts';
import type { Uploads } from './uploads.ts';

/** What a mock token may do. */
export interface TokenGrant {
  /** Has accepted the licence of every gated repo. */
  acceptedGated: boolean;
  /** May read private repos. */
  readPrivate: boolean;
  /** The user it belongs to (whoami), and the orgs that user is in: the namespaces it may write. */
  user?: string;
  orgs?: string[];
  /** 'write' may create repos and commit in its namespaces; 'read' (the default) may not. */
  role?: 'read' | 'write';
}

export const DEFAULT_TOKENS: Record<string, TokenGrant> = {
  hf_mock_ok: { acceptedGated: true, readPrivate: true, user: 'mock-user', orgs: ['mock-org'], role: 'write' },
  hf_mock_noaccess: { acceptedGated: false, readPrivate: false, user: 'mock-guest', role: 'read' },
  /** mock-user's tokens with each role. */
  hf_mock_write: { acceptedGated: true, readPrivate: true, user: 'mock-user', orgs: ['mock-org'], role: 'write' },
  hf_mock_read: { acceptedGated: true, readPrivate: true, user: 'mock-user', orgs: ['mock-org'], role: 'read' },
  /** Another user's write token (their repos are "someone else's" for mock-user). */
  hf_mock_other: { acceptedGated: true, readPrivate: false, user: 'other-user', role: 'write' },
};

export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  /** Public origin of this server as the client reached it, e.g. http://127.0.0.1:8787 */
  base: string;
  token: string | undefined;
  grant: TokenGrant | undefined;
  store: RepoStore;
  faults: Faults;
  treePageSize: number;
  /** Where created repos and uploaded objects go. */
  uploads: Uploads;
}

/** URL path prefix of a repo's web pages and files: '' for models, 'datasets/' for datasets. */
export const webPrefix = (type: RepoType): string => (type === 'dataset' ? 'datasets/' : '');

/**
 * Sends the Hub's error and returns undefined when the caller may not see the repo.
 * 'meta' (info, tree) is open for gated repos; 'files' (resolve) needs an accepted licence.
 * Anonymous callers get 401 for missing and private repos alike, as on huggingface.co.
 */
export function accessRepo(ctx: Ctx, type: RepoType, id: string, level: 'meta' | 'files'): Repo | undefined {
  const repo = ctx.store.get(type, id);
  const hidden = !repo || (repo.meta.private === true && !ctx.grant?.readPrivate);
  if (hidden) {
    if (ctx.token) sendError(ctx.res, 404, 'RepoNotFound', 'Repository not found');
    else sendError(ctx.res, 401, 'RepoNotFound', level === 'files' ? 'Invalid username or password.' : 'Repository not found');
    return undefined;
  }
  if (level === 'files' && repo.meta.gated && !ctx.grant?.acceptedGated) {
    const what = `Access to ${type} ${id} is restricted`;
    if (ctx.token) {
      const page = `${ctx.base}/${webPrefix(type)}${id}`;
      sendError(ctx.res, 403, 'GatedRepo', `${what} and you are not in the authorized list. Visit ${page} to ask for access.`);
    } else {
      sendError(ctx.res, 401, 'GatedRepo', `${what}. You must have access to it and be authenticated to access it. Please log in.`);
    }
    return undefined;
  }
  return repo;
}
