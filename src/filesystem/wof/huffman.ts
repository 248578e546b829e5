// Canonical prefix codes as XPRESS Huffman and LZX send them: only each symbol's codeword
// length, codewords assigned in order of (length, symbol) (MS-XCA §2.1;
// docs/filesystems-wof.md §3.2). Decoded through a root table indexed by `tableBits` bits whose
// entries are a symbol or a pointer to a subtable for the longer codewords, as wimlib's
// decompress_common.c does.
import type { BitReader } from './bit-reader.js';
import { CorruptDataError } from './corrupt-data.js';

/** An entry is symbol << 4 | codeword length (or subtable index << 4 | subtable bits). */
const ENTRY_SYMBOL_SHIFT = 4;
const ENTRY_LENGTH_MASK = (1 << ENTRY_SYMBOL_SHIFT) - 1;

export class HuffmanCode {
  /** Root table then subtables; `entries` is zlib's `enough` bound for these parameters. */
  private readonly table: Uint16Array;
  private readonly counts: Uint16Array;
  private readonly offsets: Uint16Array;
  private readonly sorted: Uint16Array;
  /** True when every length was 0: the code has no symbols (decoding yields 0 and uses no bits). */
  empty = true;

  constructor(
    readonly numSymbols: number,
    readonly tableBits: number,
    readonly maxLength: number,
    entries: number,
  ) {
    // A root entry holds a symbol below 2^tableBits or a subtable index at or above it.
    if (numSymbols > 1 << tableBits) throw new Error(`HuffmanCode: ${numSymbols} symbols need a larger root table`);
    this.table = new Uint16Array(entries);
    this.counts = new Uint16Array(maxLength + 1);
    this.offsets = new Uint16Array(maxLength + 1);
    this.sorted = new Uint16Array(numSymbols);
  }

  /** Builds the tables from `lens[0..numSymbols)`; CorruptDataError if they are no complete code. */
  build(lens: Uint8Array): void {
    const { counts, offsets, sorted, maxLength, numSymbols } = this;
    counts.fill(0);
    for (let s = 0; s < numSymbols; s++) {
      const len = lens[s]!;
      if (len > maxLength) throw new CorruptDataError(`a codeword length of ${len} bits`);
      counts[len]!++;
    }
    let remainder = 1;
    for (let len = 1; len <= maxLength; len++) {
      remainder = remainder * 2 - counts[len]!;
      if (remainder < 0) throw new CorruptDataError('codeword lengths that overflow the code space');
    }
    this.empty = remainder === 1 << maxLength;
    if (this.empty) {
      this.table.fill(0, 0, 1 << this.tableBits);
      return;
    }
    if (remainder !== 0) throw new CorruptDataError('codeword lengths that leave the code incomplete');
    offsets[0] = 0;
    for (let len = 0; len < maxLength; len++) offsets[len + 1] = offsets[len]! + counts[len]!;
    for (let s = 0; s < numSymbols; s++) sorted[offsets[lens[s]!]!++] = s;
    this.fill(counts[0]!);
  }

  /** Fills the root table, then the subtables, from the symbols sorted by (length, symbol). */
  private fill(firstUsed: number): void {
    const { table, counts, sorted, tableBits, numSymbols } = this;
    let at = 0;
    let i = firstUsed;
    let len = 1;
    for (; len <= tableBits; len++) {
      const span = 1 << (tableBits - len);
      for (const end = i + counts[len]!; i < end; i++, at += span) table.fill((sorted[i]! << ENTRY_SYMBOL_SHIFT) | len, at, at + span);
    }
    let codeword = at << 1;
    let subPos = 1 << tableBits;
    let subBits = 0;
    let subPrefix = -1;
    for (; i < numSymbols; i++, codeword++) {
      while (counts[len] === 0) {
        len++;
        codeword <<= 1;
      }
      const prefix = codeword >>> (len - tableBits);
      if (prefix !== subPrefix) {
        subPrefix = prefix;
        subBits = len - tableBits;
        // Widen the subtable until the codewords of this prefix fill it (the code is complete).
        for (let room = 1 << subBits; (room -= counts[tableBits + subBits]!) > 0; room <<= 1) subBits++;
        table[prefix] = (subPos << ENTRY_SYMBOL_SHIFT) | subBits;
      }
      const span = 1 << (subBits - (len - tableBits));
      if (subPos + span > table.length) throw new Error('HuffmanCode: the table bound is too small');
      table.fill((sorted[i]! << ENTRY_SYMBOL_SHIFT) | (len - tableBits), subPos, subPos + span);
      subPos += span;
      counts[len]!--;
    }
  }

  /** The next symbol of `br`. */
  decode(br: BitReader): number {
    const { table, tableBits } = this;
    br.ensure(this.maxLength);
    let entry = table[br.peek(tableBits)]!;
    if (entry >= 1 << (tableBits + ENTRY_SYMBOL_SHIFT)) {
      br.remove(tableBits);
      entry = table[(entry >>> ENTRY_SYMBOL_SHIFT) + br.peek(entry & ENTRY_LENGTH_MASK)]!;
    }
    br.remove(entry & ENTRY_LENGTH_MASK);
    return entry >>> ENTRY_SYMBOL_SHIFT;
  }
}
