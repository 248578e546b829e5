// LZNT1, the compression of NTFS compressed files ([MS-XCA] §2.5; docs/filesystems-ntfs.md §11).
import { check } from './format-error.js';

/** [MS-XCA] §2.5: every chunk decompresses to at most 4096 bytes. */
const LZNT1_CHUNK = 4096;
const CHUNK_COMPRESSED = 0x8000;
const CHUNK_SIZE_MASK = 0x0fff;

/** One compressed chunk's `src` into `out` at `outPos`; returns the bytes it wrote. */
function decompressChunk(src: Buffer, out: Buffer, outPos: number): number {
  const limit = Math.min(LZNT1_CHUNK, out.length - outPos);
  let n = 0;
  let i = 0;
  while (i < src.length && n < limit) {
    const flags = src[i++]!;
    for (let bit = 0; bit < 8 && i < src.length && n < limit; bit++) {
      if ((flags & (1 << bit)) === 0) {
        out[outPos + n++] = src[i++]!;
        continue;
      }
      check(i + 2 <= src.length, 'LZNT1 back-reference cut off');
      check(n > 0, 'LZNT1 back-reference before any byte');
      const token = src.readUInt16LE(i);
      i += 2;
      // The split between offset and length bits depends on how far into the chunk we are.
      let lengthMask = 0x0fff;
      let offsetShift = 12;
      for (let p = n - 1; p >= 0x10; p >>= 1) {
        lengthMask >>= 1;
        offsetShift--;
      }
      const offset = (token >> offsetShift) + 1;
      check(offset <= n, `LZNT1 back-reference ${offset} bytes before byte ${n} of its chunk`);
      const length = Math.min((token & lengthMask) + 3, limit - n);
      for (let k = 0; k < length; k++, n++) out[outPos + n] = out[outPos + n - offset]!;
    }
  }
  return n;
}

/**
 * The `size` bytes that the LZNT1 stream `src` decompresses to. A chunk that gives fewer than
 * 4096 bytes leaves the rest of its 4096 zero, as does the end of the stream.
 */
export function lznt1Decompress(src: Buffer, size: number): Buffer {
  const out = Buffer.alloc(size);
  let pos = 0;
  let outPos = 0;
  while (pos + 2 <= src.length && outPos < size) {
    const header = src.readUInt16LE(pos);
    if (header === 0) break;
    const length = (header & CHUNK_SIZE_MASK) + 1;
    check(pos + 2 + length <= src.length, `LZNT1 chunk of ${length} bytes at ${pos} runs past the data`);
    const chunk = src.subarray(pos + 2, pos + 2 + length);
    if (header & CHUNK_COMPRESSED) decompressChunk(chunk, out, outPos);
    else chunk.copy(out, outPos, 0, Math.min(length, size - outPos));
    pos += 2 + length;
    outPos += LZNT1_CHUNK;
  }
  return out;
}
