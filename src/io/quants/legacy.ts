// The 32-element block types: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (specs/formats.md §2.1-2.2; ggml
// quantize_row_q*_ref). Q4_1/Q5_0/Q5_1 are here because llama-quantize falls back to them when a
// row is not a multiple of 256 (Q3_K/Q2_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0).

import { GGMLType } from './ggml-types.ts';
import { checkDequantizeArgs, checkQuantizeArgs, getF16, putF16, signedAbsMax } from './common.ts';
import type { QuantFormat } from './common.ts';

// Local, not imported: hot loops call it millions of times, and a module binding can cost a
// property load per call under some module loaders (vitest's runner: about 10x slower).
const fr = Math.fround;

const QK = 32;

/** Q8_0: `{ f16 d; int8 qs[32] }`, d = amax/127, q = roundf(x/d). */
export const Q8_0: QuantFormat = {
  type: GGMLType.Q8_0,
  name: 'Q8_0',
  blockSize: QK,
  typeSize: 34,
  quantize(src, dst) {
    const out = checkQuantizeArgs('Q8_0', QK, 34, src, dst);
    for (let xo = 0, oo = 0; xo < src.length; xo += QK, oo += 34) {
      let amax = 0;
      for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(src[xo + j]));
      const d = fr(amax / 127);
      const id = d !== 0 ? fr(1 / d) : 0;
      putF16(out, oo, d);
      for (let j = 0; j < QK; j++) out[oo + 2 + j] = roundAway(fr(src[xo + j] * id)) & 0xff;
    }
    return out;
  },
  dequantize(src, dst) {
    const y = checkDequantizeArgs('Q8_0', QK, 34, src, dst);
    for (let io = 0, yo = 0; io < src.length; io += 34, yo += QK) {
      const d = getF16(src, io);
      for (let j = 0; j < QK; j++) y[yo + j] = fr(((src[io + 2 + j] << 24) >> 24) * d);
    }
    return y;
  },
};

/** Q4_0: `{ f16 d; u8 qs[16] }`, d = max/-8 (max = the value of largest |x|), q = x/d + 8. */
export const Q4_0: QuantFormat = {
  type: GGMLType.Q4_0,
  name: 'Q4_0',
  blockSize: QK,
  typeSize: 18,
  quantize(src, dst) {
    const out = checkQuantizeArgs('Q4_0', QK, 18, src, dst);
    for (let xo = 0, oo = 0; xo < src.length; xo += QK, oo += 18) {
      const { max } = signedAbsMax(src, xo, QK);
      const d = fr(max / -8);
      const id = d !== 0 ? fr(1 / d) : 0;
      putF16(out, oo, d);
      for (let j = 0; j < 16; j++) {
        const q0 = Math.min(15, truncI8(fr(fr(src[xo + j] * id) + 8.5)));
        const q1 = Math.min(15, truncI8(fr(fr(src[xo + 16 + j] * id) + 8.5)));
        out[oo + 2 + j] = (q0 & 0xff) | ((q1 << 4) & 0xff);
      }
    }
    return out;
  },
  dequantize(src, dst) {
    const y = checkDequantizeArgs('Q4_0', QK, 18, src, dst);
    for (let io = 0, yo = 0; io < src.length; io += 18, yo += QK) {
      const d = getF16(src, io);
      for (let j = 0; j < 16; j++) {
        const q = src[io + 2 + j];
        y[yo + j] = fr(((q & 15) - 8) * d);
        y[yo + 16 + j] = fr(((q >> 4) - 8) * d);
      }
    }
    return y;
  },
};

/** Q4_1: `{ f16 d; f16 m; u8 qs[16] }`, x = d*q + m. */
export const Q4_1: QuantFormat = {
  type: GGMLType.Q4_1,
  name: 'Q4_1',
  blockSize: QK,
  typeSize: 20,
  quantize(src, dst) {
    const out = checkQuantizeArgs('Q4_1', QK, 20, src, dst);
    for (let xo = 0, oo = 0; xo < src.length; xo += QK, oo += 20) {
      const [min, max] = minMax(src, xo);
      const d = fr(fr(max - min) / 15);
      const id = d !== 0 ? fr(1 / d) : 0;
      putF16(out, oo, d);
      putF16(out, oo + 2, min);
      for (let j = 0; j < 16; j++) {
        const q0 = Math.min(15, truncI8(fr(fr(fr(src[xo + j] - min) * id) + 0.5)));
        const q1 = Math.min(15, truncI8(fr(fr(fr(src[xo + 16 + j] - min) * id) + 0.5)));
        out[oo + 4 + j] = (q0 & 0xff) | ((q1 << 4) & 0xff);
      }
    }
    return out;
  },
  dequantize(src, dst) {
    const y = checkDequantizeArgs('Q4_1', QK, 20, src, dst);
    for (let io = 0, yo = 0; io < src.length; io += 20, yo += QK) {
      const d = getF16(src, io);
      const m = getF16(src, io + 2);
      for (let j = 0; j < 16; j++) {
        const q = src[io + 4 + j];
        y[yo + j] = fr(fr((q & 15) * d) + m);
        y[yo + 16 + j] = fr(fr((q >> 4) * d) + m);
      }
    }
    return y;
  },
};

/** Q5_0: `{ f16 d; u8 qh[4]; u8 qs[16] }`, d = max/-16, q = x/d + 16 (5 bits: 4 in qs, 1 in qh). */
export const Q5_0: QuantFormat = {
  type: GGMLType.Q5_0,
  name: 'Q5_0',
  blockSize: QK,
  typeSize: 22,
  quantize(src, dst) {
    const out = checkQuantizeArgs('Q5_0', QK, 22, src, dst);
    for (let xo = 0, oo = 0; xo < src.length; xo += QK, oo += 22) {
      const { max } = signedAbsMax(src, xo, QK);
      const d = fr(max / -16);
      const id = d !== 0 ? fr(1 / d) : 0;
      putF16(out, oo, d);
      let qh = 0;
      for (let j = 0; j < 16; j++) {
        const q0 = Math.min(31, truncI8(fr(fr(src[xo + j] * id) + 16.5))) & 0xff;
        const q1 = Math.min(31, truncI8(fr(fr(src[xo + 16 + j] * id) + 16.5))) & 0xff;
        out[oo + 6 + j] = (q0 & 15) | ((q1 & 15) << 4);
        qh |= ((q0 & 0x10) >>> 4) << j;
        qh |= ((q1 & 0x10) >>> 4) << (j + 16);
      }
      putU32(out, oo + 2, qh);
    }
    return out;
  },
  dequantize(src, dst) {
    const y = checkDequantizeArgs('Q5_0', QK, 22, src, dst);
    for (let io = 0, yo = 0; io < src.length; io += 22, yo += QK) {
      const d = getF16(src, io);
      const qh = getU32(src, io + 2);
      for (let j = 0; j < 16; j++) {
        const q = src[io + 6 + j];
        const h0 = ((qh >>> j) << 4) & 0x10;
        const h1 = (qh >>> (j + 12)) & 0x10;
        y[yo + j] = fr((((q & 15) | h0) - 16) * d);
        y[yo + 16 + j] = fr((((q >> 4) | h1) - 16) * d);
      }
    }
    return y;
  },
};

/** Q5_1: `{ f16 d; f16 m; u8 qh[4]; u8 qs[16] }`, x = d*q + m, q in [0, 31]. */
export const Q5_1: QuantFormat = {
  type: GGMLType.Q5_1,
  name: 'Q5_1',
  blockSize: QK,
  typeSize: 24,
  quantize(src, dst) {
    const out = checkQuantizeArgs('Q5_1', QK, 24, src, dst);
    for (let xo = 0, oo = 0; xo < src.length; xo += QK, oo += 24) {
      const [min, max] = minMax(src, xo);
      const d = fr(fr(max - min) / 31);
      const id = d !== 0 ? fr(1 / d) : 0;
      putF16(out, oo, d);
      putF16(out, oo + 2, min);
      let qh = 0;
      for (let j = 0; j < 16; j++) {
        const q0 = Math.trunc(fr(fr(fr(src[xo + j] - min) * id) + 0.5)) & 0xff;
        const q1 = Math.trunc(fr(fr(fr(src[xo + 16 + j] - min) * id) + 0.5)) & 0xff;
        out[oo + 8 + j] = (q0 & 15) | ((q1 & 15) << 4);
        qh |= ((q0 & 0x10) >>> 4) << j;
        qh |= ((q1 & 0x10) >>> 4) << (j + 16);
      }
      putU32(out, oo + 4, qh);
    }
    return out;
  },
  dequantize(src, dst) {
    const y = checkDequantizeArgs('Q5_1', QK, 24, src, dst);
    for (let io = 0, yo = 0; io < src.length; io += 24, yo += QK) {
      const d = getF16(src, io);
      const m = getF16(src, io + 2);
      const qh = getU32(src, io + 4);
      for (let j = 0; j < 16; j++) {
        const q = src[io + 8 + j];
        const h0 = ((qh >>> j) << 4) & 0x10;
        const h1 = (qh >>> (j + 12)) & 0x10;
        y[yo + j] = fr(fr(((q & 15) | h0) * d) + m);
        y[yo + 16 + j] = fr(fr(((q >> 4) | h1) * d) + m);
      }
    }
    return y;
  },
};

/** C `roundf`: ties away from zero. */
function roundAway(f: number): number {
  return f < 0 ? -Math.floor(-f + 0.5) : Math.floor(f + 0.5);
}

/** C `(int8_t)f` for the small positive values these quantizers produce: truncation, then wrap. */
function truncI8(f: number): number {
  return (Math.trunc(f) << 24) >> 24;
}

function minMax(x: Float32Array, o: number): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (let j = 0; j < QK; j++) {
    const v = x[o + j];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return [min, max];
}

function putU32(out: Uint8Array, off: number, v: number): void {
  out[off] = v & 0xff;
  out[off + 1] = (v >>> 8) & 0xff;
  out[off + 2] = (v >>> 16) & 0xff;
  out[off + 3] = (v >>> 24) & 0xff;
}

function getU32(b: Uint8Array, off: number): number {
  return (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
}
