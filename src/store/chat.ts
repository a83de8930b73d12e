// The chat with the loaded model (with or without the adapter). Generation is not wired yet.
import { create } from 'zustand';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

interface ChatState {
  messages: ChatMessage[];
  status: 'idle' | 'generating' | 'error';
  useAdapter: boolean;
  error: string | null;
}

export const useChatStore = create<ChatState>()(() => ({
  messages: [],
  status: 'idle',
  useAdapter: true,
  error: null,
}));
