// The match copy of XPRESS and LZX: `length` bytes from `offset` bytes back, overlapping when
// the offset is shorter than the length (a run). Both bounds are checked: never outside `out`.
import { CorruptDataError } from './corrupt-data.js';

/** Matches this long or longer, not overlapping, are copied natively; shorter ones byte by byte, cheaper than the call. */
const NATIVE_COPY_BYTES = 32;

/** Copies the match to out[at..at+length) and returns at + length; `end` bounds the copy. */
export function lzCopy(out: Uint8Array, at: number, end: number, offset: number, length: number): number {
  if (offset > at || offset < 1) throw new CorruptDataError(`a match ${offset} bytes back at output byte ${at}`);
  if (length > end - at) throw new CorruptDataError(`a match of ${length} bytes at output byte ${at} runs past the end`);
  if (offset >= length && length >= NATIVE_COPY_BYTES) {
    out.copyWithin(at, at - offset, at - offset + length);
    return at + length;
  }
  for (let i = 0; i < length; i++) out[at + i] = out[at + i - offset]!;
  return at + length;
}
