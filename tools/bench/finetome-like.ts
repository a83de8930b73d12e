// A FineTome-100k-like ShareGPT JSONL for the data bench, deterministic from a seed: the shape
// (conversations of {from, value} with human/gpt/system, plus source and score) and the lengths
// of tests/fixtures/data/synthetic-finetome.ts (mostly one exchange, lognormal turn lengths with a
// long tail), but words drawn from a large vocabulary with the frequencies of real text. The test
// fixture draws from ~150 words, which would flatter anything that remembers words (the
// tokenizer's pre-token memo): here 300,000 distinct words, most of them rare, keep its misses
// real. Frequencies follow the two regimes measured in large English corpora (Ferrer i Cancho and
// Solé, "Two regimes in the frequency of words", 2001): Zipf's 1/rank up to rank ~10,000, then
// 1/rank² beyond.
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { rng } from '../../src/util/random.ts';

const COMMON = (
  'the of and to a in is that for it as with was on be by this are from or an which at not have has but can one all their ' +
  'you we they he she his her its our your will would should could may might must do does did done so if then than when ' +
  'what how why where who data model function value number list result first each time example use also more other these'
).split(' ');
const SYLLABLES = 'ka to ri men sa lo ve da ni qu ex pro con tion ing er al ic ous ment ble ly re de un in com par ter cal vi mo'.split(' ');
const EXTRA = ['café', 'naïve', 'Ångström', '日本語', 'über', 'résumé', '🙂', '✓', 'π', '≈', '—', '…', 'Москва', 'مرحبا'];
const CODE = [
  'def f(x):\n    return x * 2\n',
  'for (let i = 0; i < n; i++) {\n  sum += a[i];\n}\n',
  'SELECT name, COUNT(*) FROM users GROUP BY name;\n',
  '```python\nimport math\nprint(math.sqrt(16))\n```\n',
];
const SOURCES = ['infini-instruct-top-500k', 'WebInstructSub_axolotl', 'flan', 'financial-instructions-cleaned-2', 'code_instructions_122k'];

/** Distinct words; rank 0 is the most frequent. */
export const VOCABULARY = 300_000;

function word(rank: number): string {
  if (rank < COMMON.length) return COMMON[rank];
  let n = rank - COMMON.length;
  let w = '';
  do {
    w += SYLLABLES[n % SYLLABLES.length];
    n = Math.floor(n / SYLLABLES.length);
  } while (n > 0);
  return w;
}

/** Rank where the frequency law steepens from 1/rank to 1/rank². */
const KNEE = 10_000;

/** Cumulative word frequencies: 1/(rank + 2.7), then continuing as KNEE/(rank + 2.7)². */
function zipfTable(): Float64Array {
  const cdf = new Float64Array(VOCABULARY);
  let sum = 0;
  for (let r = 0; r < VOCABULARY; r++) cdf[r] = sum += r < KNEE ? 1 / (r + 2.7) : KNEE / (r + 2.7) ** 2;
  for (let r = 0; r < VOCABULARY; r++) cdf[r] /= sum;
  return cdf;
}

function normal(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

export class FineTomeLike {
  private readonly cdf = zipfTable();
  private readonly words = new Map<number, string>();

  constructor(readonly seed: number) {}

  private zipfWord(r: () => number): string {
    const u = r();
    let lo = 0;
    let hi = VOCABULARY - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    let w = this.words.get(lo);
    if (w === undefined) this.words.set(lo, (w = word(lo)));
    return w;
  }

  private text(r: () => number, medianWords: number): string {
    const n = Math.max(3, Math.round(medianWords * Math.exp(0.8 * normal(r))));
    const out: string[] = [];
    let sentenceStart = true;
    for (let i = 0; i < n; i++) {
      const x = r();
      let w: string;
      if (x < 0.01) w = EXTRA[Math.floor(r() * EXTRA.length)];
      else if (x < 0.04) w = String(Math.floor(r() * 100000));
      else if (x < 0.042) w = '\n' + CODE[Math.floor(r() * CODE.length)];
      else w = this.zipfWord(r);
      if (sentenceStart) w = w.charAt(0).toUpperCase() + w.slice(1);
      sentenceStart = false;
      const p = r();
      if (p < 0.06) {
        w += '.';
        sentenceStart = true;
      } else if (p < 0.1) w += ',';
      out.push(w);
      if (r() < 0.01) out.push('\n\n');
    }
    return out.join(' ') + '.';
  }

  row(i: number): { conversations: { from: string; value: string }[]; source: string; score: number } {
    const r = rng((this.seed * 0x9e3779b1) ^ i);
    const conversations: { from: string; value: string }[] = [];
    if (r() < 0.1) conversations.push({ from: 'system', value: this.text(r, 15) });
    const turns = r() < 0.85 ? 1 : 2 + Math.floor(r() * 3);
    for (let t = 0; t < turns; t++) {
      conversations.push({ from: 'human', value: this.text(r, 40) });
      conversations.push({ from: 'gpt', value: this.text(r, 260) });
    }
    return { conversations, source: SOURCES[Math.floor(r() * SOURCES.length)], score: Math.round((4 + r()) * 1000) / 1000 };
  }

  /** Writes `rows` rows to `path` as JSONL, a few MB at a time; resolves to the bytes written. */
  async writeJsonl(path: string, rows: number): Promise<number> {
    const out = createWriteStream(path);
    let bytes = 0;
    let buffer: string[] = [];
    for (let i = 0; i < rows; i++) {
      buffer.push(JSON.stringify(this.row(i)));
      if (buffer.length === 1000 || i === rows - 1) {
        const text = buffer.join('\n') + '\n';
        bytes += Buffer.byteLength(text);
        buffer = [];
        if (!out.write(text)) await once(out, 'drain');
      }
    }
    out.end();
    await once(out, 'finish');
    return bytes;
  }
}
