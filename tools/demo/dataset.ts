// The demo dataset: a learnable synthetic task in ShareGPT form. "Sort these words alphabetically:
// pear apple fig" -> "apple fig pear". Words come from a small list (fruit and animals, with shared
// prefixes such as apple/apricot so that more than the first letter matters); the answer keeps the
// separator of the question (spaces or ", "). Some rows open with a system turn; some go on to a
// second turn asking for the reverse order.

import type { Rng } from './prng.ts';

export const WORDS = [
  'apple', 'apricot', 'avocado', 'banana', 'bear', 'beaver', 'cherry', 'cat', 'camel', 'date',
  'deer', 'dog', 'eagle', 'elk', 'fig', 'fox', 'frog', 'grape', 'goat', 'guava', 'hawk', 'horse',
  'kiwi', 'koala', 'lemon', 'lime', 'lion', 'mango', 'melon', 'mouse', 'newt', 'olive', 'orange',
  'otter', 'owl', 'panda', 'peach', 'pear', 'plum', 'quince', 'rabbit', 'raven', 'seal', 'sheep',
  'tiger', 'walnut', 'whale', 'wolf', 'yak', 'zebra',
] as const;

const PROMPTS = [
  'Sort these words alphabetically: {w}',
  'Sort alphabetically: {w}',
  'Put these words in alphabetical order: {w}',
  'Alphabetize the following words: {w}',
  'Please sort these words from A to Z: {w}',
];

const SYSTEMS = [
  'You sort words alphabetically.',
  'You are a helpful assistant.',
  'Answer with the sorted words only.',
];

const REVERSE_PROMPTS = ['Now in reverse order.', 'Now sort them from Z to A.'];

export interface ShareGptTurn {
  from: 'system' | 'human' | 'gpt';
  value: string;
}

export interface ShareGptRow {
  conversations: ShareGptTurn[];
}

export function makeSortWordsRows(rng: Rng, count: number): ShareGptRow[] {
  const rows: ShareGptRow[] = [];
  for (let i = 0; i < count; i++) {
    const n = 3 + rng.int(4); // 3..6 words
    const words = rng.shuffled(WORDS).slice(0, n);
    const sep = rng.float() < 0.7 ? ' ' : ', ';
    const sorted = [...words].sort();
    const conversations: ShareGptTurn[] = [];
    if (rng.float() < 0.3) conversations.push({ from: 'system', value: rng.pick(SYSTEMS) });
    conversations.push({ from: 'human', value: rng.pick(PROMPTS).replace('{w}', words.join(sep)) });
    conversations.push({ from: 'gpt', value: sorted.join(sep) });
    if (rng.float() < 0.1) {
      conversations.push({ from: 'human', value: rng.pick(REVERSE_PROMPTS) });
      conversations.push({ from: 'gpt', value: [...sorted].reverse().join(sep) });
    }
    rows.push({ conversations });
  }
  return rows;
}

export function toJsonl(rows: readonly ShareGptRow[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
}
