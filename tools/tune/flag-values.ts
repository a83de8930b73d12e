// Typed flag values for the runner: what a flag accepts (a kind), how a command-line string or a
// JSON value is checked against it, and the words the error uses ("--lora-r wants a whole number
// ≥ 1, got "abc""), so every flag and every config key fails the same clear way.

/** A mistake in how the runner was called: printed as one line, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export type ValueKind =
  | { type: 'int'; min: number; max?: number }
  | { type: 'number'; min?: number; max?: number; above?: number; below?: number }
  | { type: 'bool' }
  | { type: 'string' }
  | { type: 'enum'; values: readonly string[] }
  | { type: 'list'; values: readonly string[] };

/** What a value of this kind is, for help texts and errors. */
export function describeKind(k: ValueKind): string {
  switch (k.type) {
    case 'int':
      return k.max === undefined ? `a whole number ≥ ${k.min}` : `a whole number from ${k.min} to ${k.max}`;
    case 'number': {
      const parts: string[] = [];
      if (k.above !== undefined) parts.push(`> ${k.above}`);
      if (k.min !== undefined) parts.push(`≥ ${k.min}`);
      if (k.below !== undefined) parts.push(`< ${k.below}`);
      if (k.max !== undefined) parts.push(`≤ ${k.max}`);
      return parts.length ? `a number ${parts.join(' and ')}` : 'a number';
    }
    case 'bool':
      return 'true or false';
    case 'string':
      return 'a text';
    case 'enum':
      return `one of ${k.values.join(', ')}`;
    case 'list':
      return `a comma-separated list of ${k.values.join(', ')}`;
  }
}

const shown = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v));

/** Checks an already-typed value (from a JSON config, or parsed from text); returns it. */
export function checkValue(kind: ValueKind, value: unknown, where: string): unknown {
  const bad = (): never => {
    throw new UsageError(`${where} wants ${describeKind(kind)}, got ${shown(value)}.`);
  };
  switch (kind.type) {
    case 'int':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < kind.min || (kind.max !== undefined && value > kind.max)) bad();
      return value;
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) bad();
      const n = value as number;
      if ((kind.min !== undefined && n < kind.min) || (kind.max !== undefined && n > kind.max)) bad();
      if ((kind.above !== undefined && n <= kind.above) || (kind.below !== undefined && n >= kind.below)) bad();
      return n;
    }
    case 'bool':
      if (typeof value !== 'boolean') bad();
      return value;
    case 'string':
      if (typeof value !== 'string' || value === '') bad();
      return value;
    case 'enum':
      if (typeof value !== 'string' || !kind.values.includes(value)) bad();
      return value;
    case 'list': {
      if (!Array.isArray(value) || value.length === 0) bad();
      const list = value as unknown[];
      if (!list.every((x) => typeof x === 'string' && kind.values.includes(x))) bad();
      if (new Set(list).size !== list.length) throw new UsageError(`${where} lists a value twice: ${shown(value)}.`);
      return list;
    }
  }
}

/** Parses a command-line string into the kind's type, then checks it. */
export function parseValue(kind: ValueKind, raw: string, where: string): unknown {
  const text = raw.trim();
  switch (kind.type) {
    case 'int':
    case 'number': {
      // Number('') is 0 and Number('0x10') is 16: accept decimal notation only ("3e-4" included).
      const n = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text) ? Number(text) : NaN;
      if (Number.isNaN(n)) throw new UsageError(`${where} wants ${describeKind(kind)}, got ${shown(raw)}.`);
      try {
        return checkValue(kind, n, where);
      } catch {
        throw new UsageError(`${where} wants ${describeKind(kind)}, got ${shown(raw)}.`); // as typed, not as parsed
      }
    }
    case 'bool': {
      const t = text.toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(t)) return true;
      if (['false', '0', 'no', 'off'].includes(t)) return false;
      throw new UsageError(`${where} wants ${describeKind(kind)}, got ${shown(raw)}.`);
    }
    case 'list':
      return checkValue(
        kind,
        text.split(',').map((s) => s.trim()).filter(Boolean),
        where,
      );
    default:
      return checkValue(kind, text, where);
  }
}

/** camelCase -> kebab-case: learningRate -> learning-rate, loraR -> lora-r. */
export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}
