// A fixed-length set of small integers, one bit each (which blocks or granules hold data).

/** Set bits of each byte value. */
const POPCOUNT = Uint8Array.from({ length: 256 }, (_, b) => {
  let n = 0;
  for (let x = b; x; x &= x - 1) n++;
  return n;
});

export class Bitset {
  readonly bytes: Uint8Array;

  constructor(readonly length: number) {
    this.bytes = new Uint8Array(Math.ceil(length / 8));
  }

  has(i: number): boolean {
    return (this.bytes[i >>> 3]! & (1 << (i & 7))) !== 0;
  }

  set(i: number): void {
    this.bytes[i >>> 3]! |= 1 << (i & 7);
  }

  clear(i: number): void {
    this.bytes[i >>> 3]! &= ~(1 << (i & 7));
  }

  /** Sets every member of [from, to). */
  setRange(from: number, to: number): void {
    for (let i = from; i < to; i++) {
      if ((i & 7) === 0 && i + 8 <= to) {
        this.bytes[i >>> 3] = 0xff;
        i += 7;
      } else {
        this.set(i);
      }
    }
  }

  /** Whether any member lies in [from, to). */
  any(from: number, to: number): boolean {
    for (let i = from; i < to; i++) {
      if ((i & 7) === 0 && i + 8 <= to) {
        if (this.bytes[i >>> 3] !== 0) return true;
        i += 7;
      } else if (this.has(i)) {
        return true;
      }
    }
    return false;
  }

  /** The number of members. */
  count(): number {
    let n = 0;
    for (const b of this.bytes) n += POPCOUNT[b]!;
    return n;
  }

  /** Runs [from, to) of consecutive members, in order. */
  *runs(): Generator<[number, number]> {
    let i = 0;
    while (i < this.length) {
      if (this.bytes[i >>> 3] === 0 && (i & 7) === 0) {
        i += 8;
        continue;
      }
      if (!this.has(i)) {
        i++;
        continue;
      }
      const from = i;
      while (i < this.length && this.has(i)) i++;
      yield [from, i];
    }
  }
}
