// The current tab, kept in the URL hash (#model, #data, #train, #chat, #export), so that a reload
// or a link opens the same tab and the back button moves between tabs.
import { create } from 'zustand';

export const TABS = ['model', 'data', 'train', 'chat', 'export'] as const;
export type Tab = (typeof TABS)[number];

export const TAB_LABELS: Record<Tab, string> = {
  model: 'Model',
  data: 'Data',
  train: 'Train',
  chat: 'Chat',
  export: 'Export',
};

function tabFromHash(hash: string): Tab {
  const name = hash.replace(/^#\/?/, '').toLowerCase();
  return (TABS as readonly string[]).includes(name) ? (name as Tab) : 'model';
}

interface NavState {
  tab: Tab;
  setTab(tab: Tab): void;
}

export const useNavStore = create<NavState>()((set) => ({
  tab: tabFromHash(location.hash),
  setTab(tab) {
    if (location.hash !== `#${tab}`) location.hash = tab; // hashchange below updates the store
    set({ tab });
  },
}));

window.addEventListener('hashchange', () => {
  useNavStore.setState({ tab: tabFromHash(location.hash) });
});
