import { useRef, useState } from 'react';
import { HubModelForm, type HubModelDraft } from './HubModelForm.tsx';
import { HubModelSearch } from './HubModelSearch.tsx';

/** Search the Hub or type an id; a picked result fills in the form and focuses its Load button. */
export function HubModelPicker() {
  const [draft, setDraft] = useState<HubModelDraft>({ id: '', revision: '' });
  const loadRef = useRef<HTMLButtonElement>(null);
  const pick = (id: string) => {
    setDraft({ id, revision: '' });
    // After the render that enables the button.
    requestAnimationFrame(() => loadRef.current?.focus());
  };
  return (
    <div className="hub-picker">
      <HubModelSearch onPick={pick} />
      <HubModelForm draft={draft} onChange={setDraft} loadRef={loadRef} />
    </div>
  );
}
