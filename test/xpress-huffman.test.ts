// The XPRESS Huffman decoder against wimlib's compressor (the independent oracle), on varied
// data, random data (fast-check) and mutated streams (docs/filesystems-wof.md §3.3).
import test from 'ava';
import fc from 'fast-check';
import { CorruptDataError } from '../src/filesystem/wof/corrupt-data.js';
import { XPRESS_BLOCK_SIZE, decompressXpressHuffman } from '../src/filesystem/wof/xpress-huffman.js';
import { BitWriter } from './helpers/bit-writer.js';
import { fuzzDecoder } from './helpers/decoder-fuzz.js';
import { samples } from './helpers/sample-data.js';
import { WIMLIB_COMPRESSION_TYPE_XPRESS, wimlibCompress } from './helpers/wimlib.js';

const CHUNK_SIZES = [4096, 8192, 16384];
/** wimlib's levels: 10 fast (greedy), 50 default (lazy), 100 near-optimal parsing. */
const LEVELS = [10, 50, 100];
/** A decode of one chunk taking longer than this counts as a hang. */
const HANG_MS = 500;

const compress = (data: Buffer, chunkSize: number, level = 0) => wimlibCompress(WIMLIB_COMPRESSION_TYPE_XPRESS, chunkSize, data, level);

test('decodes what wimlib compresses, byte for byte, at every WOF chunk size and level', (t) => {
  let checked = 0;
  for (const chunkSize of CHUNK_SIZES) {
    for (const { name, data } of [...samples(chunkSize), ...samples(chunkSize - 1000)]) {
      for (const level of LEVELS) {
        const c = compress(data, chunkSize, level);
        if (!c) continue;
        t.true(decompressXpressHuffman(c, data.length).equals(data), `${name}, ${data.length} bytes, level ${level}`);
        checked++;
      }
    }
  }
  t.true(checked >= 100, `${checked} compressed cases`);
});

/** Random data with the structure compressors look for: literals, runs and copies of earlier bytes. */
const structured = fc
  .array(
    fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a) => ({ kind: 'bytes' as const, a })),
      fc.record({ kind: fc.constant('run' as const), byte: fc.integer({ min: 0, max: 255 }), n: fc.integer({ min: 1, max: 3000 }) }),
      fc.record({ kind: fc.constant('copy' as const), back: fc.nat(), n: fc.integer({ min: 1, max: 2000 }) }),
    ),
    { minLength: 1, maxLength: 40 },
  )
  .map((parts) => {
    const out: number[] = [];
    for (const p of parts) {
      if (p.kind === 'bytes') out.push(...p.a);
      else if (p.kind === 'run') for (let i = 0; i < p.n; i++) out.push(p.byte);
      else if (out.length > 0) for (let i = 0, from = out.length - 1 - (p.back % out.length); i < p.n; i++) out.push(out[from + i]!);
    }
    return Buffer.from(out.length ? out : [0]);
  });

test('property: random data round-trips through wimlib', (t) => {
  fc.assert(
    fc.property(structured, fc.constantFrom(...CHUNK_SIZES), fc.constantFrom(...LEVELS), (raw, chunkSize, level) => {
      const data = raw.subarray(0, chunkSize);
      const c = compress(data, chunkSize, level);
      return c === undefined || decompressXpressHuffman(c, data.length).equals(data);
    }),
    { seed: 0x5eed, numRuns: 300 },
  );
  t.pass();
});

/** A code where every symbol's codeword is 9 bits: table bytes 0x99, symbol s is written as s. */
const FLAT_TABLE = Buffer.alloc(256, 0x99);

/**
 * A stream of several 64 KiB blocks built by hand (wimlib never writes one): a table per block,
 * a match running over a block's end, and the unit MS-XCA's decoder reads ahead before the next table.
 */
function multiBlockStream(outSize: number): { stream: Buffer; expected: Buffer } {
  const w = new BitWriter();
  const expected = Buffer.alloc(outSize);
  let out = 0;
  while (out < outSize) {
    w.raw(FLAT_TABLE);
    const blockEnd = Math.min(outSize, out + XPRESS_BLOCK_SIZE);
    while (out < blockEnd) {
      if (out > 100 && (out % 97 === 0 || blockEnd - out === 5) && outSize - out >= 10) {
        // A match of 10 bytes from 37 back: log2(37) = 5, 5 low bits follow the symbol.
        w.bits(256 + (5 << 4) + (10 - 3), 9).bits(37 - 32, 5);
        expected.copyWithin(out, out - 37, out - 27);
        out += 10;
      } else {
        const byte = (out * 131) & 0xff;
        w.bits(byte, 9);
        expected[out++] = byte;
      }
    }
    w.alignUnit().bits(0, 16);
  }
  return { stream: w.toBuffer(), expected };
}

test('decodes a stream of several 64 KiB blocks, each with its own table', (t) => {
  const { stream, expected } = multiBlockStream(2 * XPRESS_BLOCK_SIZE + 1234);
  t.true(decompressXpressHuffman(stream, expected.length).equals(expected));
});

test('bad streams are CorruptDataError', (t) => {
  const data = samples(4096)[0]!.data;
  const good = compress(data, 4096)!;
  /** Each bad stream and the output size asked of it. */
  const bad: Record<string, [Buffer, number]> = {
    'no table': [good.subarray(0, 200), data.length],
    'ends early': [good.subarray(0, good.length >> 1), data.length],
    'no symbols': [Buffer.alloc(300), data.length],
    'lengths overflow the code': [Buffer.concat([Buffer.alloc(256, 0x11), good.subarray(256)]), data.length],
    'a match before the start': [new BitWriter().raw(FLAT_TABLE).bits(256 + (4 << 4), 9).bits(0, 4).alignUnit().toBuffer(), 3],
    'a match past the end': [new BitWriter().raw(FLAT_TABLE).bits(65, 9).bits(256 + 14, 9).alignUnit().toBuffer(), 5],
  };
  for (const [what, [stream, size]] of Object.entries(bad)) {
    t.throws(() => decompressXpressHuffman(stream, size), { instanceOf: CorruptDataError }, what);
  }
});

test('fuzz: mutated streams decode to the right length or throw CorruptDataError, quickly', (t) => {
  const streams = CHUNK_SIZES.flatMap((size) => samples(size).flatMap(({ data }) => {
    const c = compress(data, size);
    return c ? [{ c, size: data.length }] : [];
  }));
  const slowest = fuzzDecoder(streams, decompressXpressHuffman, 22);
  t.true(slowest < HANG_MS, `slowest case ${slowest.toFixed(1)} ms`);
});
