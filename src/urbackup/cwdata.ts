// Reader for UrBackup's CWData serialisation (docs/urbackup-raw-format.md §3.1): little-endian
// integers, u32-length strings and SQLite3 varints. Every read is bounds-checked.

/** getStr rejects strings over 10 MiB (docs/urbackup-raw-format.md §3.1). */
export const CWDATA_MAX_STRING: number = 10 * 1024 * 1024;

export class CwDataError extends Error {
  override name = 'CwDataError';
}

export class CwDataReader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, what: string): void {
    if (n > this.remaining) {
      throw new CwDataError(`${what} at byte ${this.pos} needs ${n} bytes but only ${this.remaining} are left (file truncated?)`);
    }
  }

  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }

  i32(what: string): number {
    this.need(4, what);
    const v = this.buf.readInt32LE(this.pos);
    this.pos += 4;
    return v;
  }

  i64(what: string): number {
    this.need(8, what);
    const v = this.buf.readBigInt64LE(this.pos);
    this.pos += 8;
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CwDataError(`${what} at byte ${this.pos - 8} is out of range (${v})`);
    return Number(v);
  }

  /** `addString`: u32 LE byte length + raw bytes. */
  str(what: string): Buffer {
    this.need(4, `length of ${what}`);
    const len = this.buf.readUInt32LE(this.pos);
    if (len > CWDATA_MAX_STRING) throw new CwDataError(`${what} at byte ${this.pos} claims ${len} bytes, over the 10 MiB limit`);
    this.pos += 4;
    return this.bytes(len, what);
  }

  bytes(len: number, what: string): Buffer {
    this.need(len, what);
    const b = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return b;
  }

  /** SQLite3 varint: big-endian base-128, the 9th byte carries 8 bits. */
  varint(what: string): number {
    let v = 0n;
    for (let i = 0; i < 9; i++) {
      const b = this.u8(what);
      if (i === 8) {
        v = (v << 8n) | BigInt(b);
        break;
      }
      v = (v << 7n) | BigInt(b & 0x7f);
      if ((b & 0x80) === 0) break;
    }
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CwDataError(`${what} is out of range (${v})`);
    return Number(v);
  }

  /** `addString2`: varint byte length + raw bytes. */
  str2(what: string): Buffer {
    const len = this.varint(`length of ${what}`);
    if (len > CWDATA_MAX_STRING) throw new CwDataError(`${what} claims ${len} bytes, over the 10 MiB limit`);
    return this.bytes(len, what);
  }
}
