// Property test: an NTFS volume made by mkntfs and ntfs-3g, with its MFT records, index blocks
// and data runs mutated, never makes the reader throw anything but CorruptVolumeError and
// UnsupportedDataError, hang, take unbounded memory or give a layout outside the volume
// (docs/filesystems-ntfs.md).
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { parseBootSector } from '../src/filesystem/ntfs/boot-sector.js';
import { applyFixups } from '../src/filesystem/ntfs/fixups.js';
import { NtfsFormatError } from '../src/filesystem/ntfs/format-error.js';
import { attributesOf, loadInode, streamOf } from '../src/filesystem/ntfs/inode.js';
import { lznt1Decompress } from '../src/filesystem/ntfs/lznt1.js';
import { openMft } from '../src/filesystem/ntfs/open-mft.js';
import { readStream } from '../src/filesystem/ntfs/stream-read.js';
import { AttrType, parseMftRecord } from '../src/filesystem/ntfs/mft-record.js';
import { openNtfs } from '../src/filesystem/ntfs/ntfs-filesystem.js';
import { CorruptVolumeError, UnsupportedDataError, type FileData, type FsNode, type Volume, type VolumeFileSystem } from '../src/filesystem/volume-fs.js';
import { hexValue, junction, symlink } from './helpers/ntfs-reparse.js';
import { makeNtfsImage, memoryVolume, withNtfs3g } from './helpers/ntfs-volume.js';
import { run } from './helpers/run.js';

/** A case that takes longer than this counts as a hang; more heap than this as unbounded memory. */
const CASE_MS = 5000;
const CASE_HEAP = 512 * 1024 * 1024;
/** The walk of one case stops after this many nodes (a mutated folder can list itself). */
const MAX_NODES = 3000;
/** Names looked up in every folder before it is listed: present, absent, first and last. */
const LOOKUPS = ['entry-7.txt', 'ENTRY-399.TXT', 'text.txt', 's', 'a', 'zzzz'];
const NAME = '/storage/c/240101-1200_Image_C/Image_C_240101-1200.raw';

/** A small volume with one of each structure: index blocks, an attribute list, LZNT1, sparse runs, links. */
const POPULATE = String.raw`
set -e
mkdir big z links
(cd big && for i in $(seq 1 400); do echo $i > "entry-$i.txt"; done)
for i in $(seq 1 300); do head -c 4096 /dev/urandom >> frag.bin; head -c 4096 /dev/zero > "z-$i.pad"; done
rm z-*.pad
setfattr -n system.ntfs_attrib_be -v 0x00000810 z
seq 1 30000 > z/text.txt
(head -c 70000 /dev/urandom; head -c 70000 /dev/zero) > z/mixed.bin
truncate -s 3M sparse.bin
printf x | dd of=sparse.bin bs=1 seek=2000000 conv=notrunc status=none
ln big/entry-1.txt hard.txt
mkdir links/j
setfattr -n system.ntfs_reparse_data -v "$J" links/j
touch links/s
setfattr -n system.ntfs_reparse_data -v "$S" links/s
`;

interface Regions {
  readonly records: readonly [number, number][];
  readonly indexBlocks: readonly [number, number][];
  readonly runLists: readonly [number, number][];
}

let image: Buffer;
let regions: Regions;
/** The stored (LZNT1) clusters of z/text.txt's first compression unit. */
let lznt1Unit: Buffer;
let work: string;

/** Where every in-use MFT record, INDX block and mapping pairs array lies in the image. */
function findRegions(b: Buffer): Regions {
  const boot = parseBootSector(b.subarray(0, 512), b.length);
  const mft0 = Buffer.from(b.subarray(boot.mftLcn * boot.clusterSize, boot.mftLcn * boot.clusterSize + boot.mftRecordSize));
  applyFixups(mft0, 'FILE');
  const runs = parseMftRecord(mft0, boot.totalClusters).attributes.find((a) => a.type === AttrType.data)!.nonResident!.runs;
  const records: [number, number][] = [];
  const runLists: [number, number][] = [];
  for (const run of runs) {
    for (let at = run.lcn! * boot.clusterSize; at < (run.lcn! + run.length) * boot.clusterSize; at += boot.mftRecordSize) {
      if (b.toString('latin1', at, at + 4) !== 'FILE' || (b.readUInt16LE(at + 0x16) & 1) === 0) continue;
      records.push([at, boot.mftRecordSize]);
      for (let a = at + b.readUInt16LE(at + 0x14); a + 16 < at + boot.mftRecordSize && b.readUInt32LE(a) !== 0xffffffff; a += b.readUInt32LE(a + 4)) {
        if (b.readUInt32LE(a + 4) === 0) break;
        if (b[a + 8]) runLists.push([a + b.readUInt16LE(a + 0x20), a + b.readUInt32LE(a + 4) - (a + b.readUInt16LE(a + 0x20))]);
      }
    }
  }
  const indexBlocks: [number, number][] = [];
  for (let at = 0; at < b.length; at += 512) if (b.toString('latin1', at, at + 4) === 'INDX') indexBlocks.push([at, boot.indexBlockSize]);
  return { records, indexBlocks, runLists };
}

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-ntfs-fuzz-'));
  const path = join(work, 'fuzz.img');
  await makeNtfsImage(path, 16);
  const env = { ...process.env, J: hexValue(junction('\\??\\C:\\big')), S: hexValue(symlink('..\\sparse.bin', true)) };
  await withNtfs3g(path, join(work, 'mnt'), ['compression'], (mnt) => run('bash', ['-c', `cd "${mnt}" && ${POPULATE}`], { env }));
  image = await readFile(path);
  regions = findRegions(image);
  lznt1Unit = await firstCompressedUnit(memoryVolume(NAME, image), 'z/text.txt');
});

async function firstCompressedUnit(volume: Volume, path: string): Promise<Buffer> {
  const { g } = await openMft(volume);
  const fs = await openNtfs(volume);
  let node = await fs.root();
  for (const part of path.split('/')) node = (await fs.lookup(node, part))!.node;
  const stream = streamOf(attributesOf(await loadInode(g, node.id), AttrType.data, ''), g.clusterSize)!;
  const allocated = stream.runs.filter((r) => r.vcn < 16 && r.lcn !== null).reduce((n, r) => n + Math.min(r.length, 16 - r.vcn), 0);
  if (allocated === 0 || allocated >= 16) throw new Error(`${path}'s first unit is not compressed`);
  return readStream(volume, stream, g.clusterSize, 0, allocated * g.clusterSize);
}

test.after.always(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

const expected = (e: unknown): boolean => e instanceof CorruptVolumeError || e instanceof UnsupportedDataError;

/** Runs `f`; an expected error counts as a result. */
async function tolerant<T>(f: () => Promise<T>): Promise<T | undefined> {
  try {
    return await f();
  } catch (e) {
    if (expected(e)) return undefined;
    throw e;
  }
}

/** A layout's file segments must lie inside the volume. */
function checkData(d: FileData, size: number): void {
  if (d.kind === 'decoded') return;
  for (const s of d.layout.segments) {
    if (s.kind === 'file' && (s.offset < 0 || s.offset + s.length > size)) throw new Error(`layout reads [${s.offset}, ${s.offset + s.length}) of a ${size}-byte volume`);
  }
}

/** Every operation on every node reachable (bounded), as a FUSE walk and `extract` would. */
async function exercise(fs: VolumeFileSystem & { streamData(n: FsNode, s: string): Promise<FileData | undefined> }, size: number): Promise<void> {
  const root = await tolerant(() => fs.root());
  const queue: FsNode[] = root ? [root] : [];
  for (let seen = 0; queue.length > 0 && seen < MAX_NODES; seen++) {
    const dir = queue.shift()!;
    // Before the listing, lookups descend the folder's B-tree.
    for (const name of LOOKUPS) await tolerant(() => fs.lookup(dir, name));
    for (const e of (await tolerant(() => fs.list(dir))) ?? []) {
      await tolerant(() => fs.lookup(dir, e.name.toUpperCase()));
      if (e.node.type === 'dir') queue.push(e.node);
      if (e.node.type === 'symlink') await tolerant(() => fs.readlink(e.node));
      if (e.node.type !== 'file') continue;
      const d = await tolerant(() => fs.data(e.node));
      if (d) checkData(d, size);
      if (d?.kind === 'decoded') await tolerant(() => d.read(0, Math.min(d.size, 1 << 20)));
      await tolerant(async () => fs.streamData(e.node, 'x'));
    }
  }
}

async function runCase(bytes: Buffer): Promise<void> {
  const volume = memoryVolume(NAME, bytes);
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`case took over ${CASE_MS} ms`)), CASE_MS)));
  try {
    await Promise.race([(async () => {
      const fs = await tolerant(() => openNtfs(volume));
      if (fs) await exercise(fs, bytes.length);
    })(), hang]);
  } finally {
    clearTimeout(timer);
  }
  if (process.memoryUsage().heapUsed > CASE_HEAP) throw new Error(`heap at ${process.memoryUsage().heapUsed} bytes`);
}

type Edit = { readonly at: number; readonly width: 1 | 2 | 4 | 8; readonly value: bigint };
const editArb: fc.Arbitrary<Edit> = fc.record({
  at: fc.nat(),
  width: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const),
  value: fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(0n, 1n, 0x7fn, 0x80n, 0xffn, 0x1000n, 0xffffn, 0xffffffffn, (1n << 63n) - 1n, (1n << 64n) - 1n)),
});

/** Writes each edit (wrapped into the region) as a little-endian integer of its width. */
function mutate(region: readonly [number, number], edits: readonly Edit[]): Buffer {
  const b = Buffer.from(image);
  const [start, length] = region;
  for (const e of edits) {
    const at = start + (e.at % Math.max(1, length - e.width + 1));
    for (let i = 0; i < e.width; i++) b[at + i] = Number((e.value >> BigInt(8 * i)) & 0xffn);
  }
  return b;
}

for (const [kind, runs] of [['records', 200], ['indexBlocks', 100], ['runLists', 150]] as const) {
  test.serial(`mutated ${kind} end in a result or the reader's two errors`, async (t) => {
    t.timeout(180_000);
    const list = regions[kind];
    t.true(list.length > 0, `the volume has ${kind}`);
    await runCase(Buffer.from(image));
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.array(editArb, { minLength: 1, maxLength: 6 }), async (pick, edits) => runCase(mutate(list[pick % list.length]!, edits))),
      { numRuns: runs * Number(process.env.FUZZ_SCALE ?? 1), seed: Number(process.env.FUZZ_SEED ?? 22), includeErrorInReport: true },
    );
    t.pass();
  });
}

/** A compression unit of 16 clusters of 4 KiB. */
const UNIT = 65536;

test('LZNT1: a real unit decodes to its text; mutated or random input gives a whole unit or NtfsFormatError', (t) => {
  const text = Buffer.from(Array.from({ length: 30000 }, (_, i) => `${i + 1}\n`).join(''));
  t.deepEqual(lznt1Decompress(lznt1Unit, UNIT), text.subarray(0, UNIT));
  const decode = (input: Buffer): void => {
    try {
      if (lznt1Decompress(input, UNIT).length !== UNIT) throw new Error('wrong length');
    } catch (e) {
      if (!(e instanceof NtfsFormatError)) throw e;
    }
  };
  fc.assert(
    fc.property(fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 8 }), (edits) => {
      const b = Buffer.from(lznt1Unit);
      for (const e of edits) b[e.at % b.length] = e.value;
      decode(b);
    }),
    { numRuns: 2000, seed: 22 },
  );
  fc.assert(fc.property(fc.uint8Array({ maxLength: 9000 }), (bytes) => decode(Buffer.from(bytes))), { numRuns: 2000, seed: 22 });
  t.pass();
});
