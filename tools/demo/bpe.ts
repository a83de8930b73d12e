// A tiny deterministic byte-level BPE trainer (GPT-2 / Llama 3 style) for the demo tokenizer.
//
// Text is split into pre-tokens with the Llama 3 pattern, each pre-token's UTF-8 bytes are mapped
// to printable characters with GPT-2's byte-to-unicode table, and the most frequent adjacent pair
// is merged repeatedly. Token ids: 0..255 are the single bytes (id = byte value), then merges in
// the order learned. Ties between equally frequent pairs go to the smaller (left id, right id).

/** The pre-tokenizer pattern of Llama 3's tokenizer.json (oniguruma syntax, as stored). */
export const LLAMA3_SPLIT_PATTERN =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** The same pattern in JS syntax (no inline (?i:) group in Node 20): used by the trainer. */
const SPLIT_RE =
  /'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

/** GPT-2's byte -> printable character table: byte b is written as BYTE_TO_CHAR[b]. */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = String.fromCodePoint(printable.includes(b) ? b : 256 + extra++);
  }
  return table;
})();

export function preTokenize(text: string): string[] {
  return text.match(SPLIT_RE) ?? [];
}

const utf8 = new TextEncoder();

/** A pre-token as the byte-level string the BPE model sees. */
export function byteLevel(piece: string): string {
  let s = '';
  for (const b of utf8.encode(piece)) s += BYTE_TO_CHAR[b];
  return s;
}

export interface BpeModel {
  /** Token strings by id (byte-level form). */
  vocab: string[];
  /** Merges in rank order, as pairs of token strings. */
  merges: [string, string][];
}

/**
 * Learns merges over `texts` until the vocabulary holds `vocabSize` tokens, or no pair occurs
 * twice any more.
 */
export function trainBpe(texts: readonly string[], vocabSize: number): BpeModel {
  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const piece of preTokenize(text)) {
      const w = byteLevel(piece);
      counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  }
  const vocab = [...BYTE_TO_CHAR];
  const ids = new Map(vocab.map((t, i) => [t, i]));
  // Each distinct word as a list of token ids, with its frequency. Sorted for determinism.
  const words = [...counts.entries()]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([w, n]) => ({ n, toks: [...w].map((c) => ids.get(c)!) }));
  const merges: [string, string][] = [];

  while (vocab.length < vocabSize) {
    const pairCounts = new Map<number, number>(); // key: left * 65536 + right
    for (const { n, toks } of words) {
      for (let i = 0; i + 1 < toks.length; i++) {
        const k = toks[i] * 65536 + toks[i + 1];
        pairCounts.set(k, (pairCounts.get(k) ?? 0) + n);
      }
    }
    let best = -1;
    let bestCount = 1; // a merge must occur at least twice
    for (const [k, c] of pairCounts) {
      if (c > bestCount || (c === bestCount && best >= 0 && k < best)) {
        best = k;
        bestCount = c;
      }
    }
    if (best < 0) break;
    const left = Math.floor(best / 65536);
    const right = best % 65536;
    const merged = vocab[left] + vocab[right];
    let id = ids.get(merged);
    if (id === undefined) {
      id = vocab.length;
      vocab.push(merged);
      ids.set(merged, id);
    }
    merges.push([vocab[left], vocab[right]]);
    for (const w of words) {
      const t = w.toks;
      const out: number[] = [];
      for (let i = 0; i < t.length; i++) {
        if (i + 1 < t.length && t[i] === left && t[i + 1] === right) {
          out.push(id);
          i++;
        } else {
          out.push(t[i]);
        }
      }
      w.toks = out;
    }
  }
  return { vocab, merges };
}
