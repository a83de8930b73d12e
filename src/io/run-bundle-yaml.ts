// A small YAML writer for the bundle's configs (accelerate, Axolotl): block mappings and lists,
// scalars as YAML 1.2 reads them. Strings are written double-quoted (JSON's escapes are YAML's),
// so a template full of braces, colons and newlines reads back exactly.

export type YamlValue = string | number | boolean | null | readonly YamlValue[] | { readonly [key: string]: YamlValue | undefined };

/** A YAML file: header comment lines, top-level keys, and comments above some of the keys. */
export interface YamlDoc {
  /** Lines written first, each as "# line". */
  header?: readonly string[];
  body: { readonly [key: string]: YamlValue | undefined };
  /** Comments written above top-level keys. */
  comments?: Readonly<Record<string, string>>;
}

function scalar(v: string | number | boolean | null): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new RangeError(`YAML: ${v} is not written`);
    return String(v);
  }
  // Plain when nothing in it could read as another type or as YAML syntax.
  if (/^[A-Za-z_][\w./-]*$/.test(v) && !/^(true|false|null|yes|no|on|off|y|n|~)$/i.test(v)) return v;
  return JSON.stringify(v);
}

function isScalar(v: YamlValue): v is string | number | boolean | null {
  return v === null || typeof v !== 'object';
}

function block(v: YamlValue, indent: string): string[] {
  if (isScalar(v)) return [scalar(v)];
  if (Array.isArray(v)) {
    if (v.length === 0) return ['[]'];
    const out: string[] = [];
    for (const item of v as readonly YamlValue[]) {
      if (isScalar(item) || (Array.isArray(item) && item.length === 0)) out.push(`${indent}- ${block(item, '')[0]}`);
      else {
        const lines = block(item, `${indent}  `);
        out.push(`${indent}- ${lines[0].trimStart()}`, ...lines.slice(1));
      }
    }
    return out;
  }
  const entries = Object.entries(v as Record<string, YamlValue | undefined>).filter(([, x]) => x !== undefined) as [string, YamlValue][];
  if (entries.length === 0) return ['{}'];
  const out: string[] = [];
  for (const [k, x] of entries) {
    const key = scalar(k);
    if (isScalar(x) || (Array.isArray(x) && x.length === 0) || (!Array.isArray(x) && Object.keys(x).length === 0)) {
      out.push(`${indent}${key}: ${block(x, '')[0]}`);
    } else {
      out.push(`${indent}${key}:`, ...block(x, Array.isArray(x) ? indent : `${indent}  `));
    }
  }
  return out;
}

export function toYaml(doc: YamlDoc): string {
  const lines = (doc.header ?? []).map((l) => (l ? `# ${l}` : '#'));
  for (const [k, v] of Object.entries(doc.body)) {
    if (v === undefined) continue;
    const note = doc.comments?.[k];
    if (note) lines.push(...note.split('\n').map((l) => `# ${l}`));
    lines.push(...block({ [k]: v }, ''));
  }
  return `${lines.join('\n')}\n`;
}
