import { SettingsButton } from './SettingsPanel.tsx';
import { TabNav } from './TabNav.tsx';
import { WorkerStatus } from './WorkerStatus.tsx';

export function Header() {
  return (
    <header className="header">
      <div className="brand">WebTune Studio</div>
      <TabNav />
      <div className="header-right">
        <WorkerStatus />
        <SettingsButton />
      </div>
    </header>
  );
}
