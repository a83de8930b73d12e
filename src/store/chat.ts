// The chat with the loaded model: the conversation, the answers streaming in, the sampling
// settings, the system prompt, and per reply how it stopped and how fast it was. Replies come from
// the base model, the model with the trained adapter, or both side by side (the same prompt,
// answered by the base model and then by the adapter: the GPU does one at a time). Generation runs
// in the trainer worker; tokens arrive by a comlink callback and are batched into the store a few
// dozen times a second, so the page stays smooth. Mode, system prompt and sampling are kept in
// IndexedDB; the conversation is not.
import { create } from 'zustand';
import { errorMessage, trainer, type ChatMessage as WireMessage, type ChatReply, type ChatRequestOptions } from '../client/index.ts';
import { debouncedSaver, loadPersisted } from './persist.ts';
import { CHAT_SAMPLING } from '../engine/sample.ts';

export type ChatRole = 'system' | 'user' | 'assistant';

/** Which model answers: base, with the adapter, or both (side by side). */
export type ChatMode = 'base' | 'adapter' | 'compare';
/** One of the two answers of a side-by-side turn. */
export type ChatLane = 'base' | 'adapter';

/** How one reply ended and how fast it came (from the worker's ChatReply). */
export interface ReplyStats {
  stop: ChatReply['stop'];
  tokens: number;
  promptTokens: number;
  prefillSeconds: number;
  decodeTokensPerSecond: number;
  /** Whether the adapter was asked for (false: the base model). */
  adapter: boolean;
}

export interface ChatMessage {
  id: number;
  role: ChatRole;
  content: string;
  /** Replies of a side-by-side turn: which column. Each column's later answers see only its own. */
  lane?: ChatLane;
  /** Assistant replies: tokens streamed so far. */
  tokens?: number;
  /** Assistant replies: set when the reply ended. */
  stats?: ReplyStats;
  /** Assistant replies that failed: why. */
  error?: string;
  /** A side-by-side reply that was not generated (Stop came first). */
  skipped?: boolean;
}

export interface SamplingSettings {
  /** 0: greedy. */
  temperature: number;
  /** 1: off. */
  topP: number;
  /** 0: off. */
  topK: number;
  /** 1: off. */
  repetitionPenalty: number;
  maxNewTokens: number;
  /** null: a new seed per reply. */
  seed: number | null;
  /** null: the model's own template when it has one, else ChatML. */
  template: ChatRequestOptions['template'] | null;
}

export const DEFAULT_SAMPLING: SamplingSettings = {
  ...CHAT_SAMPLING,
  maxNewTokens: 256,
  seed: null,
  template: null,
};

export type ChatStatus = 'idle' | 'generating' | 'error';

interface ChatState {
  messages: ChatMessage[];
  status: ChatStatus;
  /** The reply streaming now; null when none. */
  streamingId: number | null;
  /** What a person chose; without an adapter every reply comes from the base model (see effectiveMode). */
  mode: ChatMode;
  systemPrompt: string;
  sampling: SamplingSettings;
  error: string | null;
  /** Sends a user message and streams the answer(s) of `mode` (the UI passes effectiveMode()). */
  send(text: string, mode: ChatMode): Promise<void>;
  /** Stops the answer being generated (it keeps the text so far) and any answer still to come. */
  stop(): Promise<void>;
  /** A new chat: forgets the conversation (and stops an answer in progress). */
  clear(): void;
  setMode(mode: ChatMode): void;
  setSystemPrompt(text: string): void;
  setSampling(patch: Partial<SamplingSettings>): void;
}

/** The mode replies use: without a trained adapter, the base model only. */
export function effectiveMode(mode: ChatMode, hasAdapter: boolean): ChatMode {
  return hasAdapter ? mode : 'base';
}

let nextId = 1;
/** Bumped by clear(): callbacks of an older conversation are ignored. */
let conversation = 0;
/** Set by stop(): the answers of this turn not started yet are not generated. */
let stopRequested = false;

const FLUSH_MS = 33;
const PREFS_KEY = 'chat.prefs.v1';

interface Prefs {
  mode: ChatMode;
  systemPrompt: string;
  sampling: SamplingSettings;
}

const savePrefs = debouncedSaver<Prefs>(PREFS_KEY, 250);
/** Set once a person changes a preference: values read later from storage must not undo that. */
let prefsTouched = false;

function updateMessage(id: number, patch: (m: ChatMessage) => Partial<ChatMessage>): void {
  useChatStore.setState((s) => ({ messages: s.messages.map((m) => (m.id === id ? { ...m, ...patch(m) } : m)) }));
}

/** The conversation as `lane`'s model has seen it: user turns, single replies, and its own side of
 *  side-by-side turns (never the other model's answers). */
function historyFor(messages: readonly ChatMessage[], lane: ChatLane, systemPrompt: string): WireMessage[] {
  const history: WireMessage[] = [];
  if (systemPrompt.trim()) history.push({ role: 'system', content: systemPrompt.trim() });
  for (const m of messages) {
    if (m.role === 'system' || m.error || m.skipped) continue;
    if (m.role === 'assistant' && (!m.content || (m.lane && m.lane !== lane))) continue;
    history.push({ role: m.role, content: m.content });
  }
  return history;
}

function requestOptions(sampling: SamplingSettings, adapter: boolean): ChatRequestOptions {
  const options: ChatRequestOptions = {
    maxNewTokens: sampling.maxNewTokens,
    temperature: sampling.temperature,
    topP: sampling.topP,
    topK: sampling.topK,
    repetitionPenalty: sampling.repetitionPenalty,
    adapter,
  };
  if (sampling.seed !== null) options.seed = sampling.seed;
  if (sampling.template) options.template = sampling.template;
  return options;
}

/** Streams one answer into the message `replyId`; false when it failed (the message says why). */
async function generateInto(replyId: number, history: WireMessage[], options: ChatRequestOptions, mine: number): Promise<boolean> {
  // Token deltas wait here and go into the store at most every FLUSH_MS.
  let pendingText = '';
  let pendingTokens = 0;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const flush = (): void => {
    timer = null;
    if (mine !== conversation || (pendingText === '' && pendingTokens === 0)) return;
    const t = pendingText;
    const n = pendingTokens;
    pendingText = '';
    pendingTokens = 0;
    updateMessage(replyId, (m) => ({ content: m.content + t, tokens: (m.tokens ?? 0) + n }));
  };
  useChatStore.setState({ streamingId: replyId });
  try {
    const r = await trainer.generate(history, options, (t) => {
      if (mine !== conversation) return;
      pendingText += t.text;
      pendingTokens++;
      timer ??= setTimeout(flush, FLUSH_MS);
    });
    if (timer) clearTimeout(timer);
    flush();
    if (mine !== conversation) return false;
    const adapter = options.adapter ?? true;
    updateMessage(replyId, () => ({
      content: r.text,
      tokens: r.tokens,
      stats: { stop: r.stop, tokens: r.tokens, promptTokens: r.promptTokens, prefillSeconds: r.prefillSeconds, decodeTokensPerSecond: r.decodeTokensPerSecond, adapter },
    }));
    return true;
  } catch (e) {
    if (timer) clearTimeout(timer);
    if (mine !== conversation) return false;
    flush();
    const message = errorMessage(e);
    updateMessage(replyId, () => ({ error: message }));
    useChatStore.setState({ error: `The answer failed: ${message}` });
    return false;
  }
}

export const useChatStore = create<ChatState>()((set, get) => ({
  messages: [],
  status: 'idle',
  streamingId: null,
  mode: 'adapter',
  systemPrompt: '',
  sampling: { ...DEFAULT_SAMPLING },
  error: null,

  async send(text, mode) {
    const content = text.trim();
    if (!content || get().status === 'generating') return;
    const mine = conversation;
    stopRequested = false;
    const { sampling, systemPrompt } = get();
    const before = get().messages;
    const user: ChatMessage = { id: nextId++, role: 'user', content };
    // Side by side: the base model answers first, then the adapter, each into its own column.
    const lanes: (ChatLane | null)[] = mode === 'compare' ? ['base', 'adapter'] : [null];
    const replies: ChatMessage[] = lanes.map((lane) => ({ id: nextId++, role: 'assistant', content: '', tokens: 0, ...(lane ? { lane } : {}) }));
    set({ messages: [...before, user, ...replies], status: 'generating', error: null });

    let failed = false;
    for (let i = 0; i < lanes.length; i++) {
      const lane = lanes[i];
      const adapter = lane ? lane === 'adapter' : mode === 'adapter';
      if (stopRequested && i > 0) {
        updateMessage(replies[i].id, () => ({ skipped: true }));
        continue;
      }
      const history = [...historyFor(before, adapter ? 'adapter' : 'base', systemPrompt), { role: 'user' as const, content }];
      const ok = await generateInto(replies[i].id, history, requestOptions(sampling, adapter), mine);
      if (mine !== conversation) return;
      failed ||= !ok;
    }
    set({ status: failed ? 'error' : 'idle', streamingId: null });
  },

  async stop() {
    if (get().status !== 'generating') return;
    stopRequested = true;
    try {
      await trainer.cancelGenerate();
    } catch (e) {
      set({ error: `Could not stop the answer: ${errorMessage(e)}. Reload the model in the Model tab if it keeps going.` });
    }
  },

  clear() {
    conversation++;
    if (get().status === 'generating') void trainer.cancelGenerate().catch(() => undefined);
    set({ messages: [], status: 'idle', streamingId: null, error: null });
  },

  setMode(mode) {
    prefsTouched = true;
    set({ mode });
    savePrefs(prefsOf(get()));
  },

  setSystemPrompt(text) {
    prefsTouched = true;
    set({ systemPrompt: text });
    savePrefs(prefsOf(get()));
  },

  setSampling(patch) {
    prefsTouched = true;
    set((s) => ({ sampling: { ...s.sampling, ...patch } }));
    savePrefs(prefsOf(get()));
  },
}));

const prefsOf = (s: Pick<ChatState, 'mode' | 'systemPrompt' | 'sampling'>): Prefs => ({ mode: s.mode, systemPrompt: s.systemPrompt, sampling: s.sampling });

const MODES: readonly ChatMode[] = ['base', 'adapter', 'compare'];

void loadPersisted<Partial<Prefs>>(PREFS_KEY).then((p) => {
  if (prefsTouched || !p || typeof p !== 'object') return;
  useChatStore.setState((s) => ({
    mode: p.mode && MODES.includes(p.mode) ? p.mode : s.mode,
    systemPrompt: typeof p.systemPrompt === 'string' ? p.systemPrompt : s.systemPrompt,
    sampling: p.sampling && typeof p.sampling === 'object' ? { ...DEFAULT_SAMPLING, ...p.sampling } : s.sampling,
  }));
});
