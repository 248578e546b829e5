// Data that exercises an LZ decompressor: text, random bytes, zeros, short and long repeats,
// and x86-like code full of E8 (CALL) bytes for LZX's call translation. Deterministic.
import { readFileSync } from 'node:fs';

/** A small deterministic generator (xorshift32), so every run sees the same bytes. */
export function seededBytes(seed: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** x86-like bytes: CALL rel32 (E8 and four bytes) among other instructions, some near the end. */
function callHeavy(length: number): Buffer {
  const out = seededBytes(7, length);
  for (let i = 0; i + 5 <= length; i += 9 + (out[i]! % 7)) {
    out[i] = 0xe8;
    out.writeInt32LE(((out[i + 1]! << 8) | out[i + 2]!) - 30000, i + 1);
  }
  for (let i = Math.max(0, length - 12); i < length; i += 2) out[i] = 0xe8;
  return out;
}

function textOf(length: number): Buffer {
  const doc = readFileSync(new URL('../../../docs/architecture.md', import.meta.url));
  const out = Buffer.alloc(length);
  for (let at = 0; at < length; at += doc.length) doc.copy(out, at, 0, Math.min(doc.length, length - at));
  return out;
}

/** Named samples of `length` bytes. */
export function samples(length: number): { name: string; data: Buffer }[] {
  const pattern = Buffer.from('synthvhd!'.repeat(Math.ceil(length / 9))).subarray(0, length);
  const mixed = textOf(length);
  seededBytes(3, length >> 2).copy(mixed, length >> 1);
  return [
    { name: 'text', data: textOf(length) },
    { name: 'random', data: seededBytes(1, length) },
    { name: 'zeros', data: Buffer.alloc(length) },
    { name: 'repeated pattern', data: pattern },
    { name: 'long matches', data: Buffer.concat([seededBytes(2, 700), Buffer.alloc(length)]).subarray(0, length) },
    { name: 'text and random', data: mixed },
    { name: 'x86 calls (E8)', data: callHeavy(length) },
    { name: 'one byte', data: Buffer.from([0xe8]) },
  ];
}
