// Formatting for people, used only by the UI (bytes and durations are in src/util/format.ts).

/** 1234 -> "1.2K", 8_030_000_000 -> "8.0B". */
export function formatCount(n: number): string {
  const units: [number, string][] = [
    [1e12, 'T'],
    [1e9, 'B'],
    [1e6, 'M'],
    [1e3, 'K'],
  ];
  for (const [size, suffix] of units) if (Math.abs(n) >= size) return `${(n / size).toFixed(1)}${suffix}`;
  return String(n);
}

/** Short scientific notation: 3.1e-7, 1e-5, 0. */
export function formatSci(x: number): string {
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return String(x);
  return x.toExponential(1).replace(/\.0e/, 'e').replace('e+', 'e');
}

/** "1,024" */
export function formatInt(n: number): string {
  return n.toLocaleString('en-US');
}
