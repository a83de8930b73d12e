import type { ReactElement } from 'react';
import { useGpuStore } from '../store/gpu.ts';
import { useNavStore, type Tab } from '../store/nav.ts';
import { ChatTab } from './chat/ChatTab.tsx';
import { DataTab } from './data/DataTab.tsx';
import { ExportTab } from './export/ExportTab.tsx';
import { ModelTab } from './model/ModelTab.tsx';
import { NoWebGPUPage } from './NoWebGPUPage.tsx';
import { TrainTab } from './train/TrainTab.tsx';
import { GpuLostBanner } from './widgets/GpuLostBanner.tsx';
import { Header } from './widgets/Header.tsx';
import { SettingsPanel } from './widgets/SettingsPanel.tsx';
import { WorkerBanners } from './widgets/WorkerBanners.tsx';

const VIEWS: Record<Tab, () => ReactElement> = {
  model: ModelTab,
  data: DataTab,
  train: TrainTab,
  chat: ChatTab,
  export: ExportTab,
};

export function App() {
  const unsupported = useGpuStore((s) => (s.status === 'unsupported' ? s.unsupported : null));
  const tab = useNavStore((s) => s.tab);
  if (unsupported) return <NoWebGPUPage reason={unsupported.reason} detail={unsupported.message} />;

  const View = VIEWS[tab];
  return (
    <div className="app">
      <Header />
      <div className="banners">
        <WorkerBanners />
        <GpuLostBanner />
      </div>
      <SettingsPanel />
      <main className="content" data-testid={`view-${tab}`}>
        <View />
      </main>
    </div>
  );
}
