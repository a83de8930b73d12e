// Our quantizers against ggml's own: bytes made by quantize_row_*_ref and the sha256 of what
// dequantize_row_* makes of them, in the libggml-base.so that node-llama-cpp ships
// (tests/fixtures/gguf/make_quant_refs.py). Every type must match bit for bit.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GGMLType, quantFormat } from '../src/io/quants/index.ts';
import type { GGMLTypeName } from '../src/io/quants/index.ts';

const dir = join(import.meta.dirname, 'fixtures/gguf');
const refs = JSON.parse(readFileSync(join(dir, 'quant-refs.json'), 'utf8')) as {
  n: number;
  types: Record<string, { bytes: string; dequant_sha256: string }>;
};
const raw = readFileSync(join(dir, 'quant-refs.bin'));
const input = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));

describe('quantizers equal ggml reference bytes', () => {
  it('has the fixture', () => {
    expect(input.length).toBe(refs.n);
  });
  for (const name of Object.keys(refs.types) as GGMLTypeName[]) {
    it(name, () => {
      const fmt = quantFormat(GGMLType[name]);
      const want = Buffer.from(refs.types[name].bytes, 'base64');
      const got = fmt.quantize(input);
      expect(got.length).toBe(want.length);
      // Report the first differing block, not 2 KB of bytes.
      let first = -1;
      for (let i = 0; i < got.length; i++) {
        if (got[i] !== want[i]) {
          first = i;
          break;
        }
      }
      expect(first === -1 ? 'identical' : `block ${Math.floor(first / fmt.typeSize)} byte ${first % fmt.typeSize}: ${got[first]} != ${want[first]}`).toBe('identical');
      // Our dequantizer on ggml's bytes gives ggml's floats.
      const y = fmt.dequantize(new Uint8Array(want));
      const sha = createHash('sha256').update(new Uint8Array(y.buffer, y.byteOffset, y.byteLength)).digest('hex');
      expect(sha).toBe(refs.types[name].dequant_sha256);
    });
  }
});
