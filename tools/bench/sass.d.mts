// Types of tools/bench/sass.mjs for the tests (tests/sass-tool.test.ts).
export interface CacheEntry {
  offset: number;
  csize: number;
  usize: number;
}
export const OPCODES: Record<number, string>;
export function cacheEntries(file: Buffer): CacheEntry[];
export function decompress(file: Buffer, entry: CacheEntry): Buffer;
export function codeOf(blob: Buffer): { code: Buffer; instructions: number; counts: Record<string, number> };
