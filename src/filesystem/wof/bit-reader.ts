// The bitstream of XPRESS Huffman and LZX: little-endian 16-bit units read high bit first, with
// whole bytes interleaved between the units (docs/filesystems-wof.md §3.1). Strict: a bit or
// byte past the end of the input is CorruptDataError, never a zero.
import { CorruptDataError } from './corrupt-data.js';

/** The most bits one ensure() may ask for: one 16-bit unit is loaded at a time. */
export const MAX_ENSURE_BITS = 16;

export class BitReader {
  /** The bits loaded and not yet consumed, left-justified: the next bit is bit 31. */
  private bitbuf = 0;
  /** How many of bitbuf's bits were loaded from the input (the rest are zeros). */
  private bitsleft = 0;

  constructor(
    private readonly data: Uint8Array,
    /** The next byte to load: the units of the bitstream and its interleaved bytes share it. */
    public pos: number,
    private readonly end: number,
  ) {}

  /**
   * Loads a unit when fewer than n (≤ 16) bits are held. At the end of the input nothing is
   * loaded: peek() then sees zeros, and remove() throws if the bits are really used.
   */
  ensure(n: number): void {
    if (this.bitsleft >= n || this.end - this.pos < 2) return;
    this.bitbuf |= (this.data[this.pos]! | (this.data[this.pos + 1]! << 8)) << (16 - this.bitsleft);
    this.pos += 2;
    this.bitsleft += 16;
  }

  /** The next n (0..31) bits, without consuming them. */
  peek(n: number): number {
    return (this.bitbuf >>> 1) >>> (31 - n);
  }

  remove(n: number): void {
    this.bitbuf <<= n;
    this.bitsleft -= n;
    if (this.bitsleft < 0) throw new CorruptDataError('the bitstream ends in the middle of a code');
  }

  /** ensure + peek + remove of n (0..16) bits. */
  read(n: number): number {
    this.ensure(n);
    const v = this.peek(n);
    this.remove(n);
    return v;
  }

  /** The next whole byte after the units loaded so far. */
  readByte(): number {
    if (this.pos >= this.end) throw new CorruptDataError('a byte past the end of the bitstream');
    return this.data[this.pos++]!;
  }

  /** The next n whole bytes (a view of the input). */
  readBytes(n: number): Uint8Array {
    if (this.end - this.pos < n) throw new CorruptDataError(`${n} bytes past the end of the bitstream`);
    this.pos += n;
    return this.data.subarray(this.pos - n, this.pos);
  }

  readU16(): number {
    return this.readByte() | (this.readByte() << 8);
  }

  readU32(): number {
    return (this.readU16() | (this.readU16() << 16)) >>> 0;
  }

  /** Drops the bits held: the next unit or byte starts at pos. */
  align(): void {
    this.bitbuf = 0;
    this.bitsleft = 0;
  }
}
