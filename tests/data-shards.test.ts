import { describe, expect, it } from 'vitest';
import { positionIds } from '../src/data/shards.ts';

describe('positionIds of stored rows', () => {
  it('restart per document, at padding, and at every row start', () => {
    // Two rows of 4: row 0 is one document filling the row (a truncated long example), row 1
    // starts with document 1 again, then document 2, then padding.
    const segment_ids = new Uint16Array([1, 1, 1, 1, 1, 1, 2, 0]);
    expect(Array.from(positionIds({ segment_ids, seqLength: 4 }))).toEqual([0, 1, 2, 3, 0, 1, 0, 0]);
  });
});
