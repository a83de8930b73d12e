// Edits of generated WGSL for the ablation benches (mma-ablate.ts, attention-ablate.ts): each throws
// where its pattern is not there, since an edit that silently did nothing would time the base kernel
// under another name.

/** Replaces `pattern` in `source`, throwing if it is not there. */
export function edit(source: string, pattern: RegExp, replacement: string | ((m: string, ...groups: string[]) => string)): string {
  const out = source.replace(pattern, replacement as (m: string, ...groups: string[]) => string);
  if (out === source) throw new Error(`shader edit: ${pattern} not found in the shader`);
  return out;
}

/** Every occurrence of the text `from` replaced by `to`, throwing if there is none. */
export function editText(source: string, from: string, to: string): string {
  if (!source.includes(from)) throw new Error(`shader edit: ${JSON.stringify(from.slice(0, 60))} not found in the shader`);
  return source.replaceAll(from, to);
}

/** Every run of consecutive statements (one a line) matching `line` (a regex source), in the order `order` gives its lines. */
export function reorderRuns(source: string, line: string, order: (lines: string[]) => string[]): string {
  return edit(source, new RegExp(`(?:\\n\\s*${line}[^\\n]*;)+`, 'g'), (run) => order(run.match(/\n[^\n]*/g) ?? []).join(''));
}
