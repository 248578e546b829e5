// Property test: mutated `.raw.mbr` files and GPT tables never make the parser or the assembler
// throw anything but their own errors, never hang, and never give a layout that reads outside
// the volume it was given.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import test from 'ava';
import fc from 'fast-check';
import { AssembleError, assembleDisk, type PartitionImage } from '../src/disk/assemble.js';
import type { Layout } from '../src/disk/layout.js';
import { MbrFileError, parseMbrFile } from '../src/urbackup/mbr-file.js';
import { type MbrData, serializeMbrData } from './helpers/mbr-writer.js';
import { SMALL_PART_BYTES, smallTable } from './helpers/small-table.js';

/** The only errors bad input may cause: the parser's and the assembler's own. */
const OWN_ERRORS = [MbrFileError, AssembleError];
const RAW_VOLUME_OFFSET = 524288;
/** A call that takes longer than this on a 16 MiB disk's tables counts as a hang. */
const HANG_MS = 1000;
const MBR_PATH = '/storage/c/240101-1200_Image_C/Image_C_240101-1200.raw.mbr';

let v0: MbrData;
let v1: MbrData;
let work: string;

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-fuzz-'));
  v0 = await smallTable('mbr', work);
  v1 = await smallTable('gpt', work);
});

test.after.always(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** Contiguous, covering [0, size), and every file segment inside [volumeOffset, volumeOffset + volumeLength). */
function layoutProblem(layout: Layout, img: PartitionImage): string | undefined {
  let pos = 0;
  for (const s of layout.segments) {
    if (s.start !== pos) return `segment at ${s.start}, expected ${pos}`;
    if (!(s.length > 0)) return `segment of length ${s.length} at ${s.start}`;
    if (s.kind === 'file') {
      if (s.source.path !== img.raw.path) return `reads ${s.source.path}`;
      if (s.offset < img.volumeOffset || s.offset + s.length > img.volumeOffset + img.volumeLength) {
        return `file segment [${s.offset}, ${s.offset + s.length}) outside the volume [${img.volumeOffset}, ${img.volumeOffset + img.volumeLength})`;
      }
    }
    if (s.kind === 'bytes' && s.data.length !== s.length) return `bytes segment of ${s.data.length} bytes claims ${s.length}`;
    pos += s.length;
  }
  return pos === layout.size ? undefined : `segments end at ${pos}, size is ${layout.size}`;
}

function timed<T>(what: string, f: () => T): T {
  const t0 = performance.now();
  try {
    return f();
  } finally {
    const ms = performance.now() - t0;
    if (ms > HANG_MS) throw new Error(`${what} took ${ms.toFixed(0)} ms`);
  }
}

/** Parses and assembles; returns a failure description, or undefined when all is well. */
function check(file: Buffer, volumeLength: number): string | undefined {
  try {
    const mbr = timed('parseMbrFile', () => parseMbrFile(file, MBR_PATH));
    if (mbr.kind !== 'partition') return undefined;
    const img: PartitionImage = { mbr, mbrPath: MBR_PATH, raw: { path: '/storage/c/240101-1200_Image_C/Image_C_240101-1200.raw' }, volumeOffset: RAW_VOLUME_OFFSET, volumeLength };
    const disk = timed('assembleDisk', () => assembleDisk(img));
    return layoutProblem(disk.layout, img);
  } catch (e) {
    if (OWN_ERRORS.some((E) => e instanceof E)) {
      return (e as Error).message.startsWith(`${MBR_PATH}: `) || (e as Error).message.includes('Image_C_240101-1200.raw:') ? undefined : `error does not name the file: ${(e as Error).message}`;
    }
    return `unexpected ${(e as Error)?.name ?? typeof e}: ${(e as Error)?.message ?? e}`;
  }
}

/** Byte-level edits of a serialized file. */
type Edit = { op: 'set'; at: number; value: number } | { op: 'cut'; at: number } | { op: 'insert'; at: number; bytes: Uint8Array } | { op: 'int32'; at: number; value: number };

const editArb: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('cut' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
  fc.record({ op: fc.constant('int32' as const), at: fc.nat(), value: fc.constantFrom(0, 1, -1, 0x7fffffff, -0x80000000, 92, 128, 512, 4096, 0xa00001) }),
);

function applyEdit(buf: Buffer, e: Edit): Buffer {
  if (buf.length === 0) return e.op === 'insert' ? Buffer.from(e.bytes) : buf;
  const at = e.at % (buf.length + (e.op === 'insert' ? 1 : 0));
  switch (e.op) {
    case 'set': {
      const b = Buffer.from(buf);
      b[at] = e.value;
      return b;
    }
    case 'cut':
      return buf.subarray(0, at);
    case 'insert':
      return Buffer.concat([buf.subarray(0, at), e.bytes, buf.subarray(at)]);
    case 'int32': {
      const b = Buffer.from(buf);
      if (at + 4 <= b.length) b.writeInt32LE(e.value, at);
      return b;
    }
  }
}

const volumeArb = fc.oneof(fc.constant(SMALL_PART_BYTES), fc.integer({ min: 0, max: 2 * SMALL_PART_BYTES }));

test('byte-level mutations of v0 and v1 .raw.mbr files', (t) => {
  fc.assert(
    fc.property(fc.boolean(), fc.array(editArb, { minLength: 1, maxLength: 6 }), volumeArb, (gpt, edits, vol) => {
      const file = edits.reduce(applyEdit, serializeMbrData(gpt ? v1 : v0));
      const problem = check(file, vol);
      if (problem) throw new Error(problem);
    }),
    { numRuns: 3000, seed: 7 },
  );
  t.pass();
});

/** GPT header fields (offset, width) whose values steer the assembler (docs/urbackup-raw-format.md §3.5). */
const HEADER_FIELDS = [12, 24, 32, 40, 48, 72, 80, 84] as const;
/** Entry fields: first LBA @32, last LBA @40, flags @48, type GUID @0. */
const ENTRY_FIELDS = [0, 32, 40, 48] as const;
const u64Arb = fc.oneof(fc.bigInt({ min: 0n, max: 1n << 64n }).map((v) => v & ((1n << 64n) - 1n)), fc.constantFrom(0n, 1n, 33n, 2047n, 2048n, 32767n, 32768n, (1n << 53n) - 1n, 1n << 53n, (1n << 64n) - 1n));

interface GptEdit {
  header: { field: (typeof HEADER_FIELDS)[number]; value: bigint }[];
  entries: { entry: number; field: (typeof ENTRY_FIELDS)[number]; value: bigint }[];
  fixCrcs: boolean;
  partitionNumber: number;
  headerPos: number;
}

function fixCrcs(header: Buffer, table: Buffer): void {
  const n = header.readUInt32LE(80);
  const size = header.readUInt32LE(84);
  if (n * size <= table.length) header.writeUInt32LE(crc32(table.subarray(0, n * size)), 88);
  const hs = header.readUInt32LE(12);
  if (hs >= 92 && hs <= header.length) {
    header.writeUInt32LE(0, 16);
    header.writeUInt32LE(crc32(header.subarray(0, hs)), 16);
  }
}

function mutateGpt(base: MbrData, e: GptEdit): MbrData {
  const g = base.gpt!;
  const header = Buffer.from(g.header.data);
  const table = Buffer.from(g.table.data);
  for (const h of e.header) {
    if (h.field === 80 || h.field === 84 || h.field === 12) header.writeUInt32LE(Number(h.value & 0xffffffffn), h.field);
    else header.writeBigUInt64LE(h.value, h.field);
  }
  for (const x of e.entries) {
    const off = (x.entry % 128) * 128 + x.field;
    if (off + 8 <= table.length) table.writeBigUInt64LE(x.value, off);
  }
  if (e.fixCrcs) fixCrcs(header, table);
  return { ...base, partitionNumber: e.partitionNumber, gpt: { ...g, header: { pos: e.headerPos, data: header }, table: { ...g.table, data: table } } };
}

test('GPT headers and tables with mutated fields, CRCs fixed or not', (t) => {
  const gptEditArb: fc.Arbitrary<GptEdit> = fc.record({
    header: fc.array(fc.record({ field: fc.constantFrom(...HEADER_FIELDS), value: u64Arb }), { maxLength: 3 }),
    entries: fc.array(fc.record({ entry: fc.nat({ max: 127 }), field: fc.constantFrom(...ENTRY_FIELDS), value: u64Arb }), { maxLength: 4 }),
    fixCrcs: fc.boolean(),
    partitionNumber: fc.oneof(fc.constant(1), fc.integer({ min: -3, max: 130 })),
    headerPos: fc.constantFrom(512, 512, 4096),
  });
  fc.assert(
    fc.property(gptEditArb, volumeArb, (e, vol) => {
      const problem = check(serializeMbrData(mutateGpt(v1, e)), vol);
      if (problem) throw new Error(problem);
    }),
    { numRuns: 3000, seed: 11 },
  );
  t.pass();
});

test('MBR partition tables with mutated entries', (t) => {
  const entryArb = fc.record({ slot: fc.nat({ max: 3 }), type: fc.constantFrom(0, 7, 0x05, 0x0f, 0xee, 0x83), start: fc.constantFrom(0, 1, 63, 2048, 0xffffffff), sectors: fc.constantFrom(0, 1, 16384, 16383, 0xffffffff) });
  fc.assert(
    fc.property(fc.array(entryArb, { maxLength: 4 }), fc.integer({ min: -1, max: 6 }), volumeArb, (entries, partitionNumber, vol) => {
      const mbr = Buffer.from(v0.mbr);
      for (const x of entries) {
        const off = 446 + x.slot * 16;
        mbr[off + 4] = x.type;
        mbr.writeUInt32LE(x.start, off + 8);
        mbr.writeUInt32LE(x.sectors, off + 12);
      }
      const problem = check(serializeMbrData({ ...v0, mbr, partitionNumber }), vol);
      if (problem) throw new Error(problem);
    }),
    { numRuns: 2000, seed: 13 },
  );
  t.pass();
});

test('the unmutated files assemble (the properties start from valid input)', (t) => {
  for (const d of [v0, v1]) {
    const mbr = parseMbrFile(serializeMbrData(d), MBR_PATH);
    t.is(mbr.kind, 'partition');
    if (mbr.kind !== 'partition') continue;
    const disk = assembleDisk({ mbr, mbrPath: MBR_PATH, raw: { path: '/r.raw' }, volumeOffset: RAW_VOLUME_OFFSET, volumeLength: SMALL_PART_BYTES });
    t.deepEqual(disk.warnings, []);
    t.is(disk.layout.segments.filter((s) => s.kind === 'file').length, 1);
  }
});
