// The LZX decompressor of WIM and WOF: a 32 KiB window that is the whole chunk, no state across
// chunks, verbatim, aligned-offset and uncompressed blocks, and the E8 call translation
// (docs/filesystems-wof.md §3.4; [MS-PATCH] describes LZX itself; wimlib's lzx_decompress.c).
import { BitReader } from './bit-reader.js';
import { CorruptDataError } from './corrupt-data.js';
import { HuffmanCode } from './huffman.js';
import { lzCopy } from './lz-copy.js';
import { undoE8Translation } from './lzx-e8.js';

/** The window, and so the largest chunk: WOF's LZX chunks are 32 KiB. */
export const LZX_WINDOW_SIZE = 32768;
const NUM_CHARS = 256;
/** A match symbol is 256 + 8 * offset slot + length header; header 7 means a length symbol follows. */
const NUM_LEN_HEADERS = 8;
const NUM_PRIMARY_LENS = 7;
const MIN_MATCH = 2;
/** Offset slots of a 32 KiB window: 30 (wimlib's lzx_get_num_main_syms). */
const NUM_OFFSET_SLOTS = 30;
const NUM_MAIN_SYMBOLS = NUM_CHARS + NUM_OFFSET_SLOTS * NUM_LEN_HEADERS;
const NUM_LEN_SYMBOLS = 249;
const NUM_PRECODE_SYMBOLS = 20;
const PRECODE_ELEMENT_BITS = 4;
const NUM_ALIGNED_SYMBOLS = 8;
const ALIGNED_ELEMENT_BITS = 3;
const NUM_ALIGNED_BITS = 3;
/** Slots from here read their low 3 offset bits with the aligned code in aligned blocks. */
const MIN_ALIGNED_SLOT = 8;
const NUM_RECENT_OFFSETS = 3;
const BLOCKTYPE_VERBATIM = 1;
const BLOCKTYPE_ALIGNED = 2;
const BLOCKTYPE_UNCOMPRESSED = 3;
/** A block size field that starts with a 1 bit means this size. */
const DEFAULT_BLOCK_SIZE = 32768;
/** The longest run a precode symbol writes past the lengths it was asked for (18: 20 + 31 zeros). */
const LENS_OVERRUN = 50;
/** The first offset of each slot, already less the format's adjustment of 2 (slots 0-2 are the recent offsets). */
const SLOT_BASE = [-2, -1, 0, 1, 2, 4, 6, 10, 14, 22, 30, 46, 62, 94, 126, 190, 254, 382, 510, 766, 1022, 1534, 2046, 3070, 4094, 6142, 8190, 12286, 16382, 24574];
const SLOT_EXTRA_BITS = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13];

/** The codes of one chunk; lengths carry over from block to block as the base of the deltas. */
interface Codes {
  readonly main: HuffmanCode;
  readonly len: HuffmanCode;
  readonly aligned: HuffmanCode;
  readonly pre: HuffmanCode;
  readonly mainLens: Uint8Array;
  readonly lenLens: Uint8Array;
  readonly alignedLens: Uint8Array;
  readonly preLens: Uint8Array;
}

/** Root table bits and zlib's `enough` entries per code (the main code's: the bound for 656 symbols, which covers its 496). */
function newCodes(): Codes {
  return {
    main: new HuffmanCode(NUM_MAIN_SYMBOLS, 11, 16, 2726),
    len: new HuffmanCode(NUM_LEN_SYMBOLS, 10, 16, 1326),
    aligned: new HuffmanCode(NUM_ALIGNED_SYMBOLS, 7, 7, 128),
    pre: new HuffmanCode(NUM_PRECODE_SYMBOLS, 6, 15, 582),
    mainLens: new Uint8Array(NUM_MAIN_SYMBOLS + LENS_OVERRUN),
    lenLens: new Uint8Array(NUM_LEN_SYMBOLS + LENS_OVERRUN),
    alignedLens: new Uint8Array(NUM_ALIGNED_SYMBOLS),
    preLens: new Uint8Array(NUM_PRECODE_SYMBOLS),
  };
}

/** Scratch of the decoder, reused: decoding is synchronous. */
const codes = newCodes();

/** Decompresses one LZX chunk of `outSize` (1..32768) bytes; CorruptDataError if it does not decode. */
export function decompressLzx(input: Uint8Array, outSize: number): Buffer {
  if (!(outSize >= 1 && outSize <= LZX_WINDOW_SIZE)) throw new RangeError(`decompressLzx: a chunk of ${outSize} bytes`);
  const out = Buffer.allocUnsafe(outSize);
  // Every length starts at 0 in a chunk: the base of the first block's deltas.
  codes.mainLens.fill(0);
  codes.lenLens.fill(0);
  const recent = [1, 1, 1];
  const br = new BitReader(input, 0, input.length);
  let outPos = 0;
  while (outPos < outSize) {
    br.ensure(4);
    const type = br.peek(3);
    br.remove(3);
    const size = br.read(1) ? DEFAULT_BLOCK_SIZE : br.read(16);
    if (size < 1 || size > outSize - outPos) throw new CorruptDataError(`a block of ${size} bytes at output byte ${outPos} of ${outSize}`);
    if (type === BLOCKTYPE_UNCOMPRESSED) {
      readUncompressedBlock(br, recent, out, outPos, size);
    } else if (type === BLOCKTYPE_VERBATIM || type === BLOCKTYPE_ALIGNED) {
      readCodes(br, codes, type === BLOCKTYPE_ALIGNED);
      decodeBlock(br, codes, type === BLOCKTYPE_ALIGNED, recent, out, outPos, outPos + size);
    } else {
      throw new CorruptDataError(`a block of type ${type}`);
    }
    outPos += size;
  }
  undoE8Translation(out);
  return out;
}

/**
 * An uncompressed block: from the next unit boundary (a whole unit is skipped when already on
 * one, a quirk of the format), three le32 recent offsets, the bytes, a pad byte to an even size.
 */
function readUncompressedBlock(br: BitReader, recent: number[], out: Buffer, at: number, size: number): void {
  br.ensure(1);
  br.align();
  for (let i = 0; i < NUM_RECENT_OFFSETS; i++) {
    recent[i] = br.readU32();
    if (recent[i] === 0) throw new CorruptDataError('an uncompressed block with a recent offset of 0');
  }
  out.set(br.readBytes(size), at);
  if (size & 1) br.readByte();
}

/** The aligned code (aligned blocks), then the main and length codes as deltas through precodes. */
function readCodes(br: BitReader, c: Codes, aligned: boolean): void {
  if (aligned) {
    for (let i = 0; i < NUM_ALIGNED_SYMBOLS; i++) c.alignedLens[i] = br.read(ALIGNED_ELEMENT_BITS);
    c.aligned.build(c.alignedLens);
  }
  readLens(br, c, c.mainLens, 0, NUM_CHARS);
  readLens(br, c, c.mainLens, NUM_CHARS, NUM_MAIN_SYMBOLS);
  readLens(br, c, c.lenLens, 0, NUM_LEN_SYMBOLS);
  c.main.build(c.mainLens);
  c.len.build(c.lenLens);
}

/** Codeword lengths lens[from..to) through a precode sent first: deltas mod 17 and runs. */
function readLens(br: BitReader, c: Codes, lens: Uint8Array, from: number, to: number): void {
  for (let i = 0; i < NUM_PRECODE_SYMBOLS; i++) c.preLens[i] = br.read(PRECODE_ELEMENT_BITS);
  c.pre.build(c.preLens);
  // A run may end past `to` (up to LENS_OVERRUN): the next part's lengths overwrite it.
  for (let i = from; i < to; ) {
    const sym = c.pre.decode(br);
    if (sym < 17) {
      lens[i] = (lens[i]! + 17 - sym) % 17;
      i++;
    } else if (sym === 17 || sym === 18) {
      const run = sym === 17 ? 4 + br.read(4) : 20 + br.read(5);
      lens.fill(0, i, i + run);
      i += run;
    } else {
      const run = 4 + br.read(1);
      const delta = c.pre.decode(br);
      if (delta > 17) throw new CorruptDataError(`a precode run of symbol ${delta}`);
      lens.fill((lens[i]! + 17 - delta) % 17, i, i + run);
      i += run;
    }
  }
}

/** Literals and matches of a verbatim or aligned block, out[from..end). */
function decodeBlock(br: BitReader, c: Codes, aligned: boolean, recent: number[], out: Buffer, from: number, end: number): void {
  let outPos = from;
  while (outPos < end) {
    const sym = c.main.decode(br);
    if (sym < NUM_CHARS) {
      out[outPos++] = sym;
      continue;
    }
    const header = (sym - NUM_CHARS) % NUM_LEN_HEADERS;
    const slot = (sym - NUM_CHARS) >> 3;
    const length = (header === NUM_PRIMARY_LENS ? header + c.len.decode(br) : header) + MIN_MATCH;
    let offset: number;
    if (slot < NUM_RECENT_OFFSETS) {
      // Not a true LRU: using R1 or R2 swaps it with R0 only.
      offset = recent[slot]!;
      recent[slot] = recent[0]!;
    } else {
      const extra = SLOT_EXTRA_BITS[slot]!;
      if (aligned && slot >= MIN_ALIGNED_SLOT) {
        offset = (br.read(extra - NUM_ALIGNED_BITS) << NUM_ALIGNED_BITS) | c.aligned.decode(br);
      } else {
        offset = br.read(extra);
      }
      offset += SLOT_BASE[slot]!;
      recent[2] = recent[1]!;
      recent[1] = recent[0]!;
    }
    recent[0] = offset;
    outPos = lzCopy(out, outPos, end, offset, length);
  }
}
