// Form pieces of the Train tab's settings: a labelled field with its one-line explanation, a
// number typed as text (committed only when valid), and a titled group.
import { useEffect, useState, type ReactNode } from 'react';

export function Field({ id, label, name, help, disabled, children }: { id: string; label: string; name?: string; help: ReactNode; disabled?: boolean; children: ReactNode }) {
  return (
    <div className={`field${disabled ? ' disabled' : ''}`}>
      <label htmlFor={id}>
        {label}
        {name && <code className="field-name">{name}</code>}
      </label>
      {children}
      <small id={`${id}-help`}>{help}</small>
    </div>
  );
}

export function Group({ title, children, testId }: { title: string; children: ReactNode; testId?: string }) {
  return (
    <fieldset className="train-group" data-testid={testId}>
      <legend>{title}</legend>
      <div className="train-form">{children}</div>
    </fieldset>
  );
}

export interface NumberInputProps {
  id: string;
  value: number;
  min: number;
  max: number;
  integer?: boolean;
  disabled?: boolean;
  onChange: (n: number) => void;
}

const validNumber = (text: string, min: number, max: number, integer?: boolean): boolean => {
  const n = Number(text);
  return text.trim() !== '' && Number.isFinite(n) && n >= min && n <= max && (!integer || Number.isInteger(n));
};

/** A number typed as text (so that 3e-4 can be typed), committed when it parses and lies in
 *  [min, max]; shows the stored value again when it changes from elsewhere (reset, storage). */
export function NumberInput({ id, value, min, max, integer, disabled, onChange }: NumberInputProps) {
  const [text, setText] = useState(String(value));
  useEffect(() => {
    setText((t) => (Number(t) === value && t.trim() !== '' ? t : String(value)));
  }, [value]);
  const valid = validNumber(text, min, max, integer);
  return (
    <>
      <input
        id={id}
        data-testid={id}
        type="text"
        inputMode={integer ? 'numeric' : 'decimal'}
        autoComplete="off"
        spellCheck={false}
        value={text}
        disabled={disabled}
        aria-invalid={!valid}
        aria-describedby={`${id}-help`}
        onChange={(e) => {
          const t = e.target.value;
          setText(t);
          if (validNumber(t, min, max, integer)) onChange(Number(t));
        }}
        onBlur={() => !valid && setText(String(value))}
      />
      {!valid && (
        <span className="inline-msg inline-error small" role="alert">
          {integer ? 'A whole number' : 'A number'} from {min} to {max}; the run uses {value}.
        </span>
      )}
    </>
  );
}
