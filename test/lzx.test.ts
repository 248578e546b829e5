// The LZX decoder against wimlib's compressor (the independent oracle), hand-built uncompressed
// blocks, random data (fast-check) and mutated chunks (docs/filesystems-wof.md §3.4-3.5).
import test from 'ava';
import fc from 'fast-check';
import { CorruptDataError } from '../src/filesystem/wof/corrupt-data.js';
import { LZX_WINDOW_SIZE, decompressLzx } from '../src/filesystem/wof/lzx.js';
import { BitWriter } from './helpers/bit-writer.js';
import { fuzzDecoder } from './helpers/decoder-fuzz.js';
import { samples, seededBytes } from './helpers/sample-data.js';
import { WIMLIB_COMPRESSION_TYPE_LZX, wimlibCompress } from './helpers/wimlib.js';

const LEVELS = [10, 50, 100];
const HANG_MS = 500;
const BLOCKTYPE_VERBATIM = 1;
const BLOCKTYPE_ALIGNED = 2;
const BLOCKTYPE_UNCOMPRESSED = 3;

const compress = (data: Buffer, level = 0) => wimlibCompress(WIMLIB_COMPRESSION_TYPE_LZX, LZX_WINDOW_SIZE, data, level);
/** The first block's type: the top 3 bits of the first little-endian unit. */
const firstBlockType = (c: Buffer) => c[1]! >> 5;

test('decodes what wimlib compresses, byte for byte, in verbatim and aligned blocks', (t) => {
  const types = new Map<number, number>();
  for (const size of [LZX_WINDOW_SIZE, 30000, 5000, 100]) {
    for (const { name, data } of samples(size)) {
      for (const level of LEVELS) {
        const c = compress(data, level);
        if (!c) continue;
        types.set(firstBlockType(c), (types.get(firstBlockType(c)) ?? 0) + 1);
        t.true(decompressLzx(c, data.length).equals(data), `${name}, ${data.length} bytes, level ${level}`);
      }
    }
  }
  t.true((types.get(BLOCKTYPE_VERBATIM) ?? 0) > 0 && (types.get(BLOCKTYPE_ALIGNED) ?? 0) > 0, `first block types ${[...types]}`);
});

test('property: random data round-trips through wimlib', (t) => {
  const data = fc
    .array(fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 400 }), fc.tuple(fc.constantFrom(0, 0xe8, 0x41), fc.integer({ min: 1, max: 5000 })).map(([b, n]) => new Uint8Array(n).fill(b))), {
      minLength: 1,
      maxLength: 30,
    })
    .map((parts) => Buffer.concat(parts).subarray(0, LZX_WINDOW_SIZE));
  fc.assert(
    fc.property(data, fc.constantFrom(...LEVELS), (d, level) => {
      const c = compress(d, level);
      return c === undefined || decompressLzx(c, d.length).equals(d);
    }),
    { seed: 0x12a, numRuns: 200 },
  );
  t.pass();
});

/** The compressor's side of the E8 translation, after wimlib's do_translate_target (docs/filesystems-wof.md §3.5). */
function translateE8(data: Buffer): Buffer {
  const out = Buffer.from(data);
  for (let i = 0; i < out.length - 10; ) {
    if (out[i] !== 0xe8) {
      i++;
      continue;
    }
    const rel = out.readInt32LE(i + 1);
    if (rel >= -i && rel < 12000000) out.writeInt32LE(rel < 12000000 - i ? rel + i : rel - 12000000, i + 1);
    i += 5;
  }
  return out;
}

/** An uncompressed block of `data` (with its 20 header bits, R0-R2 and the pad byte). */
function uncompressedBlock(w: BitWriter, data: Buffer, recent = [1, 1, 1]): BitWriter {
  w.bits(BLOCKTYPE_UNCOMPRESSED, 3);
  if (data.length === LZX_WINDOW_SIZE) w.bits(1, 1);
  else w.bits(0, 1).bits(data.length, 16);
  w.alignUnit();
  for (const r of recent) w.u32(r);
  w.raw(data);
  return data.length & 1 ? w.raw([0]) : w;
}

test('decodes uncompressed blocks, and undoes the E8 translation in them', (t) => {
  for (const { name, data } of samples(LZX_WINDOW_SIZE).concat(samples(777))) {
    const stream = uncompressedBlock(new BitWriter(), translateE8(data)).toBuffer();
    t.true(decompressLzx(stream, data.length).equals(data), name);
  }
});

test('an uncompressed block followed by compressed ones: offsets reach across, codes start from zero', (t) => {
  const head = Buffer.from(seededBytes(5, 1001).map((b) => (b === 0xe8 ? 0 : b)));
  const tail = samples(LZX_WINDOW_SIZE - head.length)[0]!.data;
  const stream = Buffer.concat([uncompressedBlock(new BitWriter(), head).toBuffer(), compress(tail, 100)!]);
  t.true(decompressLzx(stream, LZX_WINDOW_SIZE).equals(Buffer.concat([head, tail])));
});

test('bad chunks are CorruptDataError', (t) => {
  const data = samples(LZX_WINDOW_SIZE)[0]!.data;
  const good = compress(data)!;
  const bad: Record<string, [Buffer, number]> = {
    'block type 0': [Buffer.from(good).fill(0, 0, 2), data.length],
    'block type 7': [Buffer.from([0, 0xe0, ...good.subarray(2)]), data.length],
    'ends early': [good.subarray(0, good.length >> 1), data.length],
    'nothing': [Buffer.alloc(0), data.length],
    'block larger than the chunk': [uncompressedBlock(new BitWriter(), Buffer.alloc(100)).toBuffer(), 99],
    'recent offset 0': [uncompressedBlock(new BitWriter(), Buffer.alloc(10), [1, 0, 1]).toBuffer(), 10],
    'uncompressed block cut short': [uncompressedBlock(new BitWriter(), Buffer.alloc(100)).toBuffer().subarray(0, 90), 100],
  };
  for (const [what, [stream, size]] of Object.entries(bad)) t.throws(() => decompressLzx(stream, size), { instanceOf: CorruptDataError }, what);
});

test('fuzz: mutated chunks decode to the right length or throw CorruptDataError, quickly', (t) => {
  const chunks = [LZX_WINDOW_SIZE, 3000].flatMap((size) =>
    samples(size).flatMap(({ data }) => LEVELS.flatMap((level) => {
      const c = compress(data, level);
      return c ? [{ c, size: data.length }] : [];
    })),
  );
  const slowest = fuzzDecoder(chunks, decompressLzx, 23);
  t.true(slowest < HANG_MS, `slowest case ${slowest.toFixed(1)} ms`);
});
