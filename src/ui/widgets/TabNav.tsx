import { TABS, TAB_LABELS, useNavStore } from '../../store/nav.ts';

/** Links to #model, #data…: the hash is the source of truth, the store follows it. */
export function TabNav() {
  const tab = useNavStore((s) => s.tab);
  return (
    <nav className="tabs" aria-label="Studio sections">
      {TABS.map((t) => (
        <a
          key={t}
          href={`#${t}`}
          data-testid={`tab-${t}`}
          aria-current={t === tab ? 'page' : undefined}
          className={t === tab ? 'active' : undefined}
        >
          {TAB_LABELS[t]}
        </a>
      ))}
    </nav>
  );
}
