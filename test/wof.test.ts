// WOF-compressed file data: the reparse point, and reading any range of a WofCompressedData
// stream made with wimlib's compressors (docs/filesystems-wof.md §1-2, §4).
import test from 'ava';
import fc from 'fast-check';
import { CorruptVolumeError, UnsupportedDataError, type FileData, type Volume } from '../src/filesystem/volume-fs.js';
import { IO_REPARSE_TAG_WOF, type WofAlgorithm, type WofStream, parseWofReparse, wofFileData } from '../src/filesystem/wof/wof.js';
import { samples, seededBytes } from './helpers/sample-data.js';
import { WIMLIB_COMPRESSION_TYPE_XPRESS, WOF_CHUNKS, wimlibCompress, wofCompressedData, wofReparsePoint } from './helpers/wimlib.js';

const ALGORITHMS: WofAlgorithm[] = [0, 1, 2, 3];
const VOLUME: Volume = {
  name: '/storage/c/Image_C.raw',
  size: 0,
  source: { path: '/storage/c/Image_C.raw' },
  sourceOffset: 524288,
  read: () => Promise.reject(new Error('the WOF reader reads its stream only')),
};

/** A stream over bytes in memory that counts its reads and refuses ranges outside itself. */
function memoryStream(bytes: Buffer): WofStream & { reads: number } {
  return {
    size: bytes.length,
    reads: 0,
    async read(pos, length) {
      this.reads++;
      if (pos < 0 || length < 0 || pos + length > bytes.length) throw new RangeError(`read of ${length} at ${pos} outside ${bytes.length}`);
      return Buffer.from(bytes.subarray(pos, pos + length));
    },
  };
}

const fileData = (stream: WofStream, size: number, algorithm: WofAlgorithm) => wofFileData(stream, size, algorithm, { volume: VOLUME, file: '/Windows/notepad.exe' });
const readAll = (d: FileData) => (d.kind === 'decoded' ? d.read(0, d.size) : Promise.reject(new Error('not decoded')));

/** File contents over several chunks: compressible text, incompressible chunks (stored raw), zeros, E8 code. */
function fileOf(size: number): Buffer {
  const parts = samples(Math.max(1, Math.ceil(size / 5))).map((s) => s.data);
  return Buffer.concat(parts).subarray(0, size);
}

test('parses the WOF reparse point of each algorithm', (t) => {
  for (const a of ALGORITHMS) t.is(parseWofReparse(wofReparsePoint(a), 'f'), a);
});

test('a reparse point that is not WOF FILE provider v1 with a known algorithm is UnsupportedDataError', (t) => {
  const good = wofReparsePoint(1);
  const variant = (offset: number, value: number) => {
    const b = Buffer.from(good);
    b.writeUInt32LE(value, offset);
    return b;
  };
  const bad: Record<string, Buffer> = {
    'symlink tag': variant(0, 0xa000000c),
    'WOF version 2': variant(8, 2),
    'WIM provider': variant(12, 1),
    'FILE provider version 2': variant(16, 2),
    'algorithm 4': variant(20, 4),
    'short data': good.subarray(0, 20),
    'short header': good.subarray(0, 6),
  };
  for (const [what, b] of Object.entries(bad)) {
    const e = t.throws(() => parseWofReparse(b, '/Windows/x.dll'), { instanceOf: UnsupportedDataError }, what);
    t.regex(e!.message, /^\/Windows\/x\.dll: /);
  }
  t.is(good.readUInt32LE(0), IO_REPARSE_TAG_WOF);
});

test('reads whole files of every algorithm and size, chunks compressed and stored raw', async (t) => {
  for (const { algorithm, chunkSize } of WOF_CHUNKS) {
    for (const size of [0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 7 * chunkSize + 123]) {
      const data = fileOf(size);
      const d = fileData(memoryStream(wofCompressedData(data, algorithm)), size, algorithm);
      t.is(d.kind, 'decoded');
      t.true((await readAll(d)).equals(data), `algorithm ${algorithm}, ${size} bytes`);
    }
  }
});

test('property: any range reads the same bytes as the file, fewer at its end', async (t) => {
  const files = WOF_CHUNKS.map(({ algorithm, chunkSize }) => {
    const data = fileOf(5 * chunkSize + 77);
    return { algorithm, data, stream: wofCompressedData(data, algorithm) };
  });
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: files.length - 1 }), fc.nat(), fc.nat({ max: 200000 }), async (f, p, length) => {
      const { algorithm, data, stream } = files[f]!;
      const d = fileData(memoryStream(stream), data.length, algorithm);
      if (d.kind !== 'decoded') return false;
      const pos = p % (data.length + 10);
      return (await d.read(pos, length)).equals(data.subarray(pos, pos + length));
    }),
    { seed: 4, numRuns: 300 },
  );
  t.pass();
});

test('small sequential reads decode each chunk once (the cache), with two stream reads per chunk run', async (t) => {
  const data = fileOf(4 * 32768);
  const stream = memoryStream(wofCompressedData(data, 1));
  const d = fileData(stream, data.length, 1);
  if (d.kind !== 'decoded') return t.fail();
  const parts: Buffer[] = [];
  for (let pos = 0; pos < data.length; pos += 4096) parts.push(await d.read(pos, 4096));
  t.true(Buffer.concat(parts).equals(data));
  t.is(stream.reads, 4 * 2);
  // Concurrent reads of one chunk share its load.
  const again = memoryStream(wofCompressedData(data, 1));
  const d2 = fileData(again, data.length, 1);
  if (d2.kind !== 'decoded') return t.fail();
  const both = await Promise.all([d2.read(0, 100), d2.read(200, 100), d2.read(32000, 100)]);
  t.true(both[2].equals(data.subarray(32000, 32100)));
  t.is(again.reads, 2);
});

test('an uncompressed size that is no byte count is CorruptVolumeError', (t) => {
  for (const size of [-1, 2 ** 60, Number.NaN]) t.throws(() => fileData(memoryStream(Buffer.alloc(0)), size, 0), { instanceOf: CorruptVolumeError }, String(size));
});

test('chunk offset tables of 8-byte entries for files over 4 GiB', async (t) => {
  // 2^18 chunks of 16 KiB zeros and a last chunk of one byte: the stream is computed, not stored.
  const zeros = wimlibCompress(WIMLIB_COMPRESSION_TYPE_XPRESS, 16384, Buffer.alloc(16384))!;
  const full = 2 ** 18;
  const size = full * 16384 + 1;
  const table = full * 8;
  const stream: WofStream = {
    size: table + full * zeros.length + 1,
    async read(pos, length) {
      const out = Buffer.alloc(length);
      for (let i = 0; i < length; i++) {
        const at = pos + i;
        if (at < table) out[i] = Number((BigInt((Math.floor(at / 8) + 1) * zeros.length) >> BigInt(8 * (at % 8))) & 0xffn);
        else if (at - table < full * zeros.length) out[i] = zeros[(at - table) % zeros.length]!;
      }
      return out;
    },
  };
  const d = fileData(stream, size, 3);
  if (d.kind !== 'decoded') return t.fail();
  t.true((await d.read(size - 20000, 30000)).equals(Buffer.alloc(20000)));
  t.true((await d.read(0, 40000)).equals(Buffer.alloc(40000)));
  t.true((await d.read(2 ** 32 - 5, 10)).equals(Buffer.alloc(6)), "the last chunk, of one byte, at 4 GiB");
});

test('a corrupt offset table or chunk is CorruptVolumeError naming the file; other chunks still read', async (t) => {
  const data = Buffer.concat([fileOf(3 * 4096), seededBytes(9, 4096), fileOf(4096)]);
  const good = wofCompressedData(data, 0);
  const table = 4 * 4;
  const corrupt = (mutate: (b: Buffer) => void) => {
    const b = Buffer.from(good);
    mutate(b);
    return b;
  };
  const cases: Record<string, [Buffer, number]> = {
    'offset past the stream': [corrupt((b) => b.writeUInt32LE(0xfffffff0, 4)), 2 * 4096],
    'decreasing offsets': [corrupt((b) => b.writeUInt32LE(1, 4)), 4096],
    'chunk larger than it holds': [corrupt((b) => b.writeUInt32LE(b.readUInt32LE(4) + 4100, 8)), 2 * 4096],
    'chunk that does not decode': [corrupt((b) => b.fill(0xff, table + 10, table + 300)), 0],
    'stream shorter than its table': [good.subarray(0, 10), 0],
  };
  for (const [what, [bytes, badPos]] of Object.entries(cases)) {
    const d = fileData(memoryStream(bytes), data.length, 0);
    if (d.kind !== 'decoded') return t.fail();
    const e = await t.throwsAsync(d.read(badPos, 10), { instanceOf: CorruptVolumeError }, what);
    t.regex(e!.message, /^\/storage\/c\/Image_C\.raw: \/Windows\/notepad\.exe: WofCompressedData: /, what);
    if (what === 'chunk that does not decode') t.true((await d.read(4096, 4096)).equals(data.subarray(4096, 8192)), 'the next chunk');
  }
});

test('fuzz: mutated streams read the right length or reject with CorruptVolumeError, quickly', async (t) => {
  const files = WOF_CHUNKS.map(({ algorithm, chunkSize }) => {
    const data = fileOf(6 * chunkSize + 5);
    return { algorithm, size: data.length, stream: wofCompressedData(data, algorithm) };
  });
  let slowest = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.nat({ max: files.length - 1 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
      fc.nat(),
      fc.nat({ max: 100000 }),
      async (f, flips, p, length) => {
        const { algorithm, size, stream } = files[f]!;
        const m = Buffer.from(stream);
        // Half the flips land in the offset table, where they do the most harm.
        for (const [at, v] of flips) m[at % 2 === 0 ? (at >> 1) % Math.min(m.length, 64) : at % m.length] = v;
        const d = fileData(memoryStream(m), size, algorithm);
        if (d.kind !== 'decoded') return false;
        const pos = p % size;
        const t0 = performance.now();
        try {
          if ((await d.read(pos, length)).length !== Math.min(length, size - pos)) return false;
        } catch (e) {
          if (!(e instanceof CorruptVolumeError)) throw e;
        }
        slowest = Math.max(slowest, performance.now() - t0);
        return true;
      },
    ),
    { seed: 5, numRuns: 1500 },
  );
  t.true(slowest < 1000, `slowest read ${slowest.toFixed(1)} ms`);
});

test('a stream read that comes back short is CorruptVolumeError, not shifted bytes', async (t) => {
  const data = fileOf(3 * 4096);
  const full = memoryStream(wofCompressedData(data, 0));
  const short: WofStream = { size: full.size, read: async (pos, length) => (await full.read(pos, length)).subarray(0, Math.max(0, length - 1)) };
  const d = fileData(short, data.length, 0);
  if (d.kind !== 'decoded') return t.fail();
  await t.throwsAsync(d.read(0, data.length), { instanceOf: CorruptVolumeError });
});

test('fuzz: mutated reparse points parse to an algorithm or throw UnsupportedDataError', (t) => {
  fc.assert(
    fc.property(fc.constantFrom(...ALGORITHMS), fc.array(fc.tuple(fc.nat({ max: 23 }), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat({ max: 30 }), (a, flips, cut) => {
      const b = wofReparsePoint(a);
      for (const [at, v] of flips) b[at] = v;
      try {
        return ALGORITHMS.includes(parseWofReparse(b.subarray(0, cut), 'f'));
      } catch (e) {
        return e instanceof UnsupportedDataError;
      }
    }),
    { seed: 6, numRuns: 2000 },
  );
  t.pass();
});
