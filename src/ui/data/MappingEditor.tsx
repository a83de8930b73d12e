import { useEffect, useState } from 'react';
import type { FormatKind, FormatMapping, InspectResult, Role, RoleMap } from '../../data/index.ts';
import { useDatasetStore } from '../../store/dataset.ts';
import { FORMAT_LABELS } from './labels.ts';

const DEFAULT_ROLES: RoleMap = { system: 'system', human: 'user', user: 'user', gpt: 'assistant', assistant: 'assistant', model: 'assistant', bot: 'assistant', chatgpt: 'assistant' };

/** A starting mapping of `kind`, guessing columns by name. */
function mappingOfKind(kind: FormatKind, columns: string[], current: FormatMapping | null): FormatMapping {
  if (current?.kind === kind) return current;
  const pick = (...names: string[]) => names.find((n) => columns.includes(n)) ?? columns[0] ?? names[0];
  switch (kind) {
    case 'sharegpt':
      return { kind, column: pick('conversations', 'messages'), roleField: 'from', contentField: 'value', roles: { ...DEFAULT_ROLES } };
    case 'openai':
      return { kind, column: pick('messages', 'conversations'), roleField: 'role', contentField: 'content', roles: { ...DEFAULT_ROLES } };
    case 'alpaca':
      return { kind, instruction: pick('instruction', 'prompt'), input: columns.includes('input') ? 'input' : null, output: pick('output', 'response'), system: null };
    case 'text':
      return { kind, column: pick('text', 'content') };
  }
}

function ColumnSelect({ id, label, value, columns, optional, onChange }: { id: string; label: string; value: string | null; columns: string[]; optional?: boolean; onChange: (v: string | null) => void }) {
  const all = value && !columns.includes(value) ? [...columns, value] : columns;
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <select id={id} data-testid={id} value={value ?? ''} onChange={(e) => onChange(e.target.value === '' ? null : e.target.value)}>
        {optional && <option value="">(none)</option>}
        {all.map((c) => (
          <option key={c} value={c}>
            {c}
          </option>
        ))}
      </select>
    </div>
  );
}

function TextField({ id, label, value, onChange }: { id: string; label: string; value: string; onChange: (v: string) => void }) {
  return (
    <div className="field">
      <label htmlFor={id}>{label}</label>
      <input id={id} data-testid={id} value={value} spellCheck={false} onChange={(e) => onChange(e.target.value)} />
    </div>
  );
}

const ROLE_CHOICES: (Role | null)[] = ['system', 'user', 'assistant', null];

function RoleMapEditor({ roles, seen, onChange }: { roles: RoleMap; seen: string[]; onChange: (r: RoleMap) => void }) {
  if (seen.length === 0) return null;
  return (
    <fieldset className="role-map">
      <legend>Speakers</legend>
      {seen.map((value) => {
        const current = Object.hasOwn(roles, value) ? roles[value] : Object.hasOwn(roles, value.toLowerCase()) ? roles[value.toLowerCase()] : undefined;
        return (
          <label key={value} className="role-row">
            <code>{value}</code> →{' '}
            <select
              data-testid={`role-${value}`}
              value={current === undefined ? '?' : (current ?? 'drop')}
              onChange={(e) => onChange({ ...roles, [value]: e.target.value === 'drop' ? null : (e.target.value as Role) })}
            >
              {current === undefined && <option value="?">(unknown: records skipped)</option>}
              {ROLE_CHOICES.map((r) => (
                <option key={r ?? 'drop'} value={r ?? 'drop'}>
                  {r ?? 'drop the message'}
                </option>
              ))}
            </select>
          </label>
        );
      })}
    </fieldset>
  );
}

/** The column and role mapping, editable; applying it re-reads the first records with it. */
export function MappingEditor({ inspection }: { inspection: InspectResult }) {
  const mapping = useDatasetStore((s) => s.mapping);
  const edited = useDatasetStore((s) => s.mappingEdited);
  const setMapping = useDatasetStore((s) => s.setMapping);
  const [draft, setDraft] = useState<FormatMapping | null>(mapping);
  useEffect(() => setDraft(mapping), [mapping]);
  const columns = inspection.columns;
  const kind = draft?.kind ?? '';
  const dirty = JSON.stringify(draft) !== JSON.stringify(mapping);

  return (
    <div className="mapping" data-testid="mapping-editor">
      <div className="field">
        <label htmlFor="format-kind">Records are</label>
        <select id="format-kind" data-testid="format-kind" value={kind} onChange={(e) => setDraft(mappingOfKind(e.target.value as FormatKind, columns, draft))}>
          {!draft && <option value="">(choose)</option>}
          {(Object.keys(FORMAT_LABELS) as FormatKind[]).map((k) => (
            <option key={k} value={k}>
              {FORMAT_LABELS[k]}
            </option>
          ))}
        </select>
      </div>
      {draft && (draft.kind === 'sharegpt' || draft.kind === 'openai') && (
        <>
          <div className="row fields">
            <ColumnSelect id="map-column" label="Messages column" value={draft.column} columns={columns} onChange={(v) => setDraft({ ...draft, column: v ?? '' })} />
            <TextField id="map-role-field" label="Speaker field" value={draft.roleField} onChange={(v) => setDraft({ ...draft, roleField: v })} />
            <TextField id="map-content-field" label="Text field" value={draft.contentField} onChange={(v) => setDraft({ ...draft, contentField: v })} />
          </div>
          <RoleMapEditor roles={draft.roles} seen={inspection.roleValues} onChange={(roles) => setDraft({ ...draft, roles })} />
        </>
      )}
      {draft?.kind === 'alpaca' && (
        <div className="row fields">
          <ColumnSelect id="map-instruction" label="Instruction" value={draft.instruction} columns={columns} onChange={(v) => setDraft({ ...draft, instruction: v ?? '' })} />
          <ColumnSelect id="map-input" label="Input" value={draft.input} columns={columns} optional onChange={(v) => setDraft({ ...draft, input: v })} />
          <ColumnSelect id="map-output" label="Output" value={draft.output} columns={columns} onChange={(v) => setDraft({ ...draft, output: v ?? '' })} />
          <ColumnSelect id="map-system" label="System" value={draft.system} columns={columns} optional onChange={(v) => setDraft({ ...draft, system: v })} />
        </div>
      )}
      {draft?.kind === 'text' && <ColumnSelect id="map-text" label="Text column" value={draft.column} columns={columns} onChange={(v) => setDraft({ ...draft, column: v ?? '' })} />}
      <div className="row">
        <button type="button" data-testid="mapping-apply" disabled={!draft || !dirty} onClick={() => draft && void setMapping(draft)}>
          Apply mapping
        </button>
        {edited && (
          <button type="button" className="secondary" onClick={() => void setMapping(null)}>
            Back to the detected format
          </button>
        )}
      </div>
    </div>
  );
}
