// The chat with the loaded model (with or without the trained adapter): the conversation, the
// answer streaming in, the sampling settings, and per reply how it stopped and how fast it was.
// Generation runs in the trainer worker (one answer at a time); tokens arrive by a comlink
// callback and are batched into the store a few dozen times a second, so the page stays smooth.
import { create } from 'zustand';
import { errorMessage, trainer, type ChatMessage as WireMessage, type ChatReply, type ChatRequestOptions } from '../client/index.ts';

export type ChatRole = 'system' | 'user' | 'assistant';

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
  /** Assistant replies: tokens streamed so far. */
  tokens?: number;
  /** Assistant replies: set when the reply ended. */
  stats?: ReplyStats;
  /** Assistant replies that failed: why. */
  error?: string;
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
  temperature: 0.7,
  topP: 0.9,
  topK: 0,
  repetitionPenalty: 1.1,
  maxNewTokens: 256,
  seed: null,
  template: null,
};

export type ChatStatus = 'idle' | 'generating' | 'error';

interface ChatState {
  messages: ChatMessage[];
  status: ChatStatus;
  /** Ask for the trained adapter (used only when one exists; see hasAdapter in the UI). */
  useAdapter: boolean;
  systemPrompt: string;
  sampling: SamplingSettings;
  error: string | null;
  /** Sends a user message and streams the assistant's answer. `adapter`: apply the trained adapter. */
  send(text: string, adapter: boolean): Promise<void>;
  /** Stops the answer being generated (it keeps the text so far). */
  stop(): Promise<void>;
  /** A new chat: forgets the conversation (and stops an answer in progress). */
  clear(): void;
  setUseAdapter(on: boolean): void;
  setSystemPrompt(text: string): void;
  setSampling(patch: Partial<SamplingSettings>): void;
}

let nextId = 1;
/** Bumped by clear(): callbacks of an older conversation are ignored. */
let conversation = 0;

const FLUSH_MS = 33;

function updateMessage(id: number, patch: (m: ChatMessage) => Partial<ChatMessage>): void {
  useChatStore.setState((s) => ({ messages: s.messages.map((m) => (m.id === id ? { ...m, ...patch(m) } : m)) }));
}

export const useChatStore = create<ChatState>()((set, get) => ({
  messages: [],
  status: 'idle',
  useAdapter: true,
  systemPrompt: '',
  sampling: { ...DEFAULT_SAMPLING },
  error: null,

  async send(text, adapter) {
    const content = text.trim();
    if (!content || get().status === 'generating') return;
    const mine = conversation;
    const { sampling, systemPrompt } = get();
    const history: WireMessage[] = [];
    if (systemPrompt.trim()) history.push({ role: 'system', content: systemPrompt.trim() });
    for (const m of get().messages) {
      if (m.role === 'system' || m.error || (m.role === 'assistant' && !m.content)) continue;
      history.push({ role: m.role, content: m.content });
    }
    history.push({ role: 'user', content });
    const user: ChatMessage = { id: nextId++, role: 'user', content };
    const reply: ChatMessage = { id: nextId++, role: 'assistant', content: '', tokens: 0 };
    set((s) => ({ messages: [...s.messages, user, reply], status: 'generating', error: null }));

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
      updateMessage(reply.id, (m) => ({ content: m.content + t, tokens: (m.tokens ?? 0) + n }));
    };

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

    try {
      const r = await trainer.generate(history, options, (t) => {
        if (mine !== conversation) return;
        pendingText += t.text;
        pendingTokens++;
        timer ??= setTimeout(flush, FLUSH_MS);
      });
      if (timer) clearTimeout(timer);
      flush();
      if (mine !== conversation) return;
      updateMessage(reply.id, () => ({
        content: r.text,
        tokens: r.tokens,
        stats: {
          stop: r.stop,
          tokens: r.tokens,
          promptTokens: r.promptTokens,
          prefillSeconds: r.prefillSeconds,
          decodeTokensPerSecond: r.decodeTokensPerSecond,
          adapter,
        },
      }));
      set({ status: 'idle' });
    } catch (e) {
      if (timer) clearTimeout(timer);
      if (mine !== conversation) return;
      const message = errorMessage(e);
      flush();
      updateMessage(reply.id, () => ({ error: message }));
      set({ status: 'error', error: `The answer failed: ${message}` });
    }
  },

  async stop() {
    if (get().status !== 'generating') return;
    try {
      await trainer.cancelGenerate();
    } catch (e) {
      set({ error: `Could not stop the answer: ${errorMessage(e)}` });
    }
  },

  clear() {
    conversation++;
    if (get().status === 'generating') void trainer.cancelGenerate().catch(() => undefined);
    set({ messages: [], status: 'idle', error: null });
  },

  setUseAdapter(on) {
    set({ useAdapter: on });
  },

  setSystemPrompt(text) {
    set({ systemPrompt: text });
  },

  setSampling(patch) {
    set((s) => ({ sampling: { ...s.sampling, ...patch } }));
  },
}));
