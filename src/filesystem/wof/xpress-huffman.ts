// The MS-XCA "LZ77+Huffman" (XPRESS Huffman) decompressor (MS-XCA §2.2.4), as WOF uses it: one
// chunk is one independent stream (docs/filesystems-wof.md §3.3).
import { BitReader } from './bit-reader.js';
import { CorruptDataError } from './corrupt-data.js';
import { HuffmanCode } from './huffman.js';
import { lzCopy } from './lz-copy.js';

/** MS-XCA §2.1: 256 literals and 256 match symbols, codewords of at most 15 bits. */
const NUM_SYMBOLS = 512;
const MAX_CODEWORD_LENGTH = 15;
const NUM_LITERALS = 256;
/** The code lengths: 512 four-bit values, two to a byte, low nibble first (MS-XCA §2.1). */
const TABLE_BYTES = NUM_SYMBOLS / 2;
/** Every 65536 output bytes a new table starts (MS-XCA §2.2.4). */
export const XPRESS_BLOCK_SIZE = 65536;
const MIN_MATCH = 3;
/** A 4-bit length of 15 is continued in a byte; a byte of 255 in 16 bits; 0 there in 32. */
const LENGTH_ESCAPE = 15;
const BYTE_ESCAPE = 255;
/** Root table bits, and zlib's `enough` entries for 512 symbols, 11 bits, 15-bit codewords. */
const TABLE_BITS = 11;
const TABLE_ENTRIES = 2566;
/** Bits held before a match's offset bits and escape bytes, as MS-XCA's 32-bit window keeps. */
const MATCH_LOOKAHEAD_BITS = 16;

/** Scratch of the decoder, reused: decoding is synchronous and every chunk rebuilds the code. */
const code = new HuffmanCode(NUM_SYMBOLS, TABLE_BITS, MAX_CODEWORD_LENGTH, TABLE_ENTRIES);
const lens = new Uint8Array(NUM_SYMBOLS);

/** Decompresses one XPRESS Huffman stream of `outSize` bytes; CorruptDataError if it does not decode. */
export function decompressXpressHuffman(input: Uint8Array, outSize: number): Buffer {
  const out = Buffer.allocUnsafe(outSize);
  let inPos = 0;
  let outPos = 0;
  while (outPos < outSize) {
    if (input.length - inPos < TABLE_BYTES) throw new CorruptDataError(`the Huffman table at input byte ${inPos} is cut short`);
    for (let i = 0; i < TABLE_BYTES; i++) {
      const b = input[inPos + i]!;
      lens[2 * i] = b & 0xf;
      lens[2 * i + 1] = b >> 4;
    }
    code.build(lens);
    if (code.empty) throw new CorruptDataError(`the Huffman table at input byte ${inPos} has no symbols`);
    const br = new BitReader(input, inPos + TABLE_BYTES, input.length);
    outPos = decodeBlock(br, code, out, outPos, Math.min(outSize, outPos + XPRESS_BLOCK_SIZE));
    // The next table follows the units MS-XCA's decoder had loaded: at least 16 bits ahead.
    br.ensure(MATCH_LOOKAHEAD_BITS);
    inPos = br.pos;
  }
  return out;
}

/** Decodes literals and matches until `blockEnd` (a match may run past it, not past `out`). */
function decodeBlock(br: BitReader, code: HuffmanCode, out: Buffer, outPos: number, blockEnd: number): number {
  while (outPos < blockEnd) {
    const sym = code.decode(br);
    if (sym < NUM_LITERALS) {
      out[outPos++] = sym;
      continue;
    }
    let length = sym & 0xf;
    const offsetBits = (sym >> 4) & 0xf;
    br.ensure(MATCH_LOOKAHEAD_BITS);
    const offset = (1 << offsetBits) | br.peek(offsetBits);
    br.remove(offsetBits);
    if (length === LENGTH_ESCAPE) length = longLength(br);
    outPos = lzCopy(out, outPos, out.length, offset, length + MIN_MATCH);
  }
  return outPos;
}

/** A length of 15 or more, from the bytes that follow (MS-XCA §2.2.4). */
function longLength(br: BitReader): number {
  const byte = br.readByte();
  if (byte !== BYTE_ESCAPE) return byte + LENGTH_ESCAPE;
  let length = br.readU16();
  if (length === 0) length = br.readU32();
  if (length < LENGTH_ESCAPE) throw new CorruptDataError(`a match length field of ${length}`);
  return length;
}
