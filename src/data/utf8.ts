// Where UTF-8 goes wrong: only called after a strict TextDecoder refused a line, to say where.

const cont = (b: number | undefined): boolean => b !== undefined && b >= 0x80 && b <= 0xbf;

/** Index of the first byte of the first ill-formed sequence (Unicode table 3-7), or -1. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    let n: number; // bytes in this sequence when well formed
    let lo = 0x80; // range of the second byte
    let hi = 0xbf;
    if (b < 0x80) n = 1;
    else if (b >= 0xc2 && b <= 0xdf) n = 2;
    else if (b >= 0xe0 && b <= 0xef) {
      n = 3;
      if (b === 0xe0) lo = 0xa0; // no overlong forms
      if (b === 0xed) hi = 0x9f; // no surrogates
    } else if (b >= 0xf0 && b <= 0xf4) {
      n = 4;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f; // nothing above U+10FFFF
    } else return i;
    if (n > 1 && !(bytes[i + 1] >= lo && bytes[i + 1] <= hi)) return i;
    for (let k = 2; k < n; k++) if (!cont(bytes[i + k])) return i;
    i += n;
  }
  return -1;
}
