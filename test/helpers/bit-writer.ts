// Writes the bitstream XPRESS Huffman and LZX read: bits high first into little-endian 16-bit
// units, and whole bytes after the units written so far (docs/filesystems-wof.md §3.1). For the
// streams the tests build by hand, where wimlib's compressors never go (several XPRESS blocks,
// LZX uncompressed blocks).

export class BitWriter {
  private readonly bytes: number[] = [];
  private unit = 0;
  private unitBits = 0;
  /** Where the unit being filled goes, reserved when its first bit was written. */
  private unitAt = -1;

  bits(value: number, n: number): this {
    for (let i = n - 1; i >= 0; i--) {
      if (this.unitBits === 0) {
        this.unitAt = this.bytes.length;
        this.bytes.push(0, 0);
      }
      this.unit = (this.unit << 1) | ((value >>> i) & 1);
      if (++this.unitBits === 16) this.flushUnit();
    }
    return this;
  }

  /** Pads the unit being filled with zero bits. */
  alignUnit(): this {
    if (this.unitBits > 0) this.bits(0, 16 - this.unitBits);
    return this;
  }

  /** Whole bytes, after every unit written so far (the unit being filled must be complete). */
  raw(data: Uint8Array | readonly number[]): this {
    if (this.unitBits !== 0) throw new Error('BitWriter: bytes in the middle of a unit');
    this.bytes.push(...data);
    return this;
  }

  u32(v: number): this {
    return this.raw([v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24]);
  }

  toBuffer(): Buffer {
    if (this.unitBits !== 0) throw new Error('BitWriter: a unit is not complete');
    return Buffer.from(this.bytes);
  }

  private flushUnit(): void {
    this.bytes[this.unitAt] = this.unit & 0xff;
    this.bytes[this.unitAt + 1] = (this.unit >>> 8) & 0xff;
    this.unit = 0;
    this.unitBits = 0;
  }
}
