// Builds real disk image files (partition table + real filesystems with real files) with the
// system tools, so the UrBackup fixtures are made from genuine bytes (docs/urbackup-raw-format.md §2–3; the bare § numbers below are its sections).
import { createHash, randomBytes } from 'node:crypto';
import { access, mkdir, mkdtemp, open, readFile, readdir, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Bytes } from '../../src/base/units.js';
import { run } from './run.js';

export class FixtureError extends Error {
  override name = 'FixtureError';
}

export const MiB: Bytes = 1024 * 1024;
/** The 4 KiB unit of sparseness, `.raw.bitmap` bits and restore streaming (§2.5, §4.2). */
export const BLOCK: Bytes = 4096;

export type PartitionType = 'esp' | 'msr' | 'ntfs' | 'recovery' | 'ext4' | 'vfat';
export type FsKind = 'vfat' | 'ntfs' | 'ext4' | 'none';

/** Content of one file: the bytes, or a size for that many random bytes. */
export type FileContent = Buffer | number;

export interface PartitionSpec {
  readonly sizeMiB: number;
  /** First sector in logical sectors, e.g. 63 for a legacy layout; default: next 1 MiB boundary. */
  readonly startSector?: number;
  readonly type: PartitionType;
  /** GPT partition name and filesystem label. */
  readonly label?: string;
  /** MBR active flag. */
  readonly bootable?: boolean;
  readonly files?: Readonly<Record<string, FileContent>>;
}

export interface DiskSpec {
  readonly table: 'gpt' | 'mbr';
  readonly sectorSize?: 512 | 4096;
  readonly sizeMiB: number;
  readonly partitions: readonly PartitionSpec[];
  /** GRUB boot code in the MBR and a stage 1.5 in the 63 sectors after it (§3.2 row 18). */
  readonly grubExtraData?: boolean;
}

export interface BuiltPartition {
  /** 1-based: the N-th non-empty table entry, i.e. UrBackup's `partition_number` (§6.2). */
  readonly index: number;
  readonly startByte: Bytes;
  readonly sizeBytes: Bytes;
  /** UrBackup's `drivesize` (§2.2): the NTFS size (partition minus its last sector), else the whole partition. */
  readonly volumeBytes: Bytes;
  /** The client transfer block (§2.5): the NTFS cluster, else 4096. */
  readonly blockBytes: Bytes;
  readonly type: PartitionType;
  readonly fs: FsKind;
  readonly label: string;
  /** path → sha256 hex of every file written into the filesystem. */
  readonly files: Readonly<Record<string, string>>;
}

export interface BuiltDisk {
  readonly path: string;
  readonly sizeBytes: Bytes;
  readonly sectorSize: 512 | 4096;
  readonly table: 'gpt' | 'mbr';
  readonly partitions: readonly BuiltPartition[];
  cleanup(): Promise<void>;
}

/** A disk image file attached to a loop device with its partitions added (the kernel here parses no tables). */
export interface AttachedDisk {
  readonly device: string;
  partition(index: number): string;
  detach(): Promise<void>;
}

const GPT_TYPE: Record<PartitionType, string> = {
  esp: 'EF00',
  msr: '0C01',
  ntfs: '0700',
  recovery: '2700',
  ext4: '8300',
  vfat: '0700',
};

const MBR_TYPE: Record<PartitionType, string | undefined> = {
  esp: 'ef',
  msr: undefined,
  ntfs: '7',
  recovery: '27',
  ext4: '83',
  vfat: 'c',
};

const FS_OF: Record<PartitionType, FsKind> = {
  esp: 'vfat',
  msr: 'none',
  ntfs: 'ntfs',
  recovery: 'ntfs',
  ext4: 'ext4',
  vfat: 'vfat',
};

const DEFAULT_LABEL: Record<PartitionType, string> = {
  esp: 'EFI system partition',
  msr: 'Microsoft reserved partition',
  ntfs: 'Basic data partition',
  recovery: 'Recovery',
  ext4: 'Linux filesystem',
  vfat: 'Basic data partition',
};

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function fileContents(files: Readonly<Record<string, FileContent>>): Map<string, Buffer> {
  return new Map(Object.entries(files).map(([p, c]) => [p, typeof c === 'number' ? randomBytes(c) : c]));
}

function hashes(files: ReadonlyMap<string, Buffer>): Record<string, string> {
  return Object.fromEntries([...files].map(([p, b]) => [p, sha256(b)]));
}

async function waitFor(path: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await access(path).then(() => true, () => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new FixtureError(`${path}: partition device node did not appear`);
}

/** Attaches a disk image to a loop device (`-b 4096` for 4Kn) and adds its partitions with partx. */
export async function attachDisk(path: string, sectorSize: 512 | 4096, opts: { readOnly?: boolean } = {}): Promise<AttachedDisk> {
  const args = ['--find', '--show', '-b', String(sectorSize), ...(opts.readOnly ? ['-r'] : []), path];
  const device = (await run('losetup', args)).trim();
  const detach = async (): Promise<void> => {
    await run('blockdev', ['--flushbufs', device]).catch(() => undefined);
    await run('partx', ['-d', device]).catch(() => undefined);
    await run('losetup', ['-d', device]);
  };
  // partx fails on a disk without a partition table: there is nothing to add then.
  await run('partx', ['-a', device]).catch(() => undefined);
  return { device, partition: (n) => `${device}p${n}`, detach };
}

/** Mounts a partition read-write (`ntfs-3g` for NTFS, the kernel for ext4) for the duration of `body`. */
async function withMounted<T>(fs: 'ntfs' | 'ext4', dev: string, workDir: string, body: (dir: string) => Promise<T>, readOnly = false): Promise<T> {
  const dir = await mkdtemp(join(workDir, 'mnt-'));
  const ro = readOnly ? ['-o', fs === 'ext4' ? 'ro,noload' : 'ro'] : [];
  await run(fs === 'ntfs' ? 'ntfs-3g' : 'mount', [...ro, dev, dir]);
  try {
    return await body(dir);
  } finally {
    await run('umount', [dir]);
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Reads files back from partition `part` of a disk image file (e.g. an expected or assembled disk)
 * and returns path → sha256: FAT through mtools at the partition offset, NTFS/ext4 through a
 * read-only loop device and a read-only mount.
 */
export async function hashFilesOnDisk(path: string, sectorSize: 512 | 4096, part: Pick<BuiltPartition, 'index' | 'startByte' | 'fs'>, files: readonly string[], workDir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  if (part.fs === 'vfat') {
    const dir = await mkdtemp(join(workDir, 'fat-'));
    try {
      for (const [i, f] of files.entries()) {
        const copy = join(dir, String(i));
        await run('mcopy', ['-n', '-i', `${path}@@${part.startByte}`, `::/${f}`, copy], { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
        out[f] = sha256(await readFile(copy));
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    return out;
  }
  if (part.fs === 'none') throw new FixtureError(`${path}: partition ${part.index} has no filesystem to read files from`);
  const fs = part.fs;
  const loop = await attachDisk(path, sectorSize, { readOnly: true });
  try {
    const dev = loop.partition(part.index);
    await waitFor(dev);
    await withMounted(fs, dev, workDir, async (dir) => {
      for (const f of files) out[f] = sha256(await readFile(join(dir, f)));
    }, true);
  } finally {
    await loop.detach();
  }
  return out;
}

async function writeTree(root: string, files: ReadonlyMap<string, Buffer>): Promise<void> {
  for (const [p, data] of files) {
    await mkdir(dirname(join(root, p)), { recursive: true });
    await writeFile(join(root, p), data);
  }
}

/** Writes files into the filesystem on `dev`: FAT through mtools, NTFS through ntfs-3g, ext4 through a kernel mount. */
async function putFiles(fs: FsKind, dev: string, files: ReadonlyMap<string, Buffer>, workDir: string): Promise<void> {
  if (files.size === 0) return;
  switch (fs) {
    case 'none':
      throw new FixtureError(`${dev}: a partition without a filesystem cannot hold files`);
    case 'vfat': {
      const tree = await mkdtemp(join(workDir, 'tree-'));
      try {
        await writeTree(tree, files);
        const top = (await readdir(tree)).map((n) => join(tree, n));
        await run('mcopy', ['-s', '-o', '-i', dev, ...top, '::/'], { env: { ...process.env, MTOOLS_SKIP_CHECK: '1' } });
      } finally {
        await rm(tree, { recursive: true, force: true });
      }
      return;
    }
    case 'ntfs':
    case 'ext4':
      await withMounted(fs, dev, workDir, (dir) => writeTree(dir, files));
      return;
  }
}

async function makeFs(p: PartitionSpec, dev: string, label: string, startSector: number, sectorSize: number): Promise<void> {
  switch (FS_OF[p.type]) {
    case 'vfat':
      await run('mkfs.vfat', ['-F', '32', '-n', label.slice(0, 11).toUpperCase(), dev]);
      return;
    case 'ntfs':
      await run('mkntfs', ['-Q', '-F', '-q', '-L', label, '-s', String(sectorSize), '-p', String(startSector), '-H', '255', '-S', '63', dev]);
      return;
    case 'ext4':
      await run('mkfs.ext4', ['-q', '-F', '-L', label.slice(0, 16), dev]);
      return;
    case 'none':
      return;
  }
}

export async function readAt(fh: FileHandle, pos: Bytes, length: Bytes): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, pos + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buf;
}

/** Reads `length` bytes at `pos` of a file. */
export async function readFileAt(path: string, pos: Bytes, length: Bytes): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    return await readAt(fh, pos, length);
  } finally {
    await fh.close();
  }
}

/** §2.2: NTFS `drivesize` = bytes/sector (0x0B) × total sectors (0x28); client block = the cluster. */
function ntfsGeometry(boot: Buffer, at: string): { volumeBytes: Bytes; blockBytes: Bytes } {
  if (boot.toString('latin1', 3, 11) !== 'NTFS    ') throw new FixtureError(`${at}: no NTFS boot sector`);
  const bps = boot.readUInt16LE(0x0b);
  const spc = boot[0x0d]!;
  return { volumeBytes: bps * Number(boot.readBigUInt64LE(0x28)), blockBytes: bps * spc };
}

/** Writes GRUB-like boot code (the strings the client looks for, §3.2 row 18) and a fake stage 1.5 after the MBR. */
async function writeGrub(fh: FileHandle): Promise<void> {
  const code = Buffer.alloc(440);
  code.write('GRUB \0Geom\0Hard Disk\0Read\0 Error\r\n', 0x17c, 'latin1');
  randomBytes(0x17c).copy(code, 0);
  await fh.write(code, 0, code.length, 0);
  await fh.write(randomBytes(63 * 512), 0, 63 * 512, 512);
}

function placePartitions(spec: DiskSpec, sectorSize: number): { start: number; sectors: number }[] {
  const align = MiB / sectorSize;
  let next = align;
  return spec.partitions.map((p) => {
    const start = p.startSector ?? Math.ceil(next / align) * align;
    const sectors = (p.sizeMiB * MiB) / sectorSize;
    next = start + sectors;
    return { start, sectors };
  });
}

async function writeTable(spec: DiskSpec, dev: string, placed: { start: number; sectors: number }[]): Promise<void> {
  if (spec.table === 'gpt') {
    const args = ['-o'];
    spec.partitions.forEach((p, i) => {
      const n = i + 1;
      const { start, sectors } = placed[i]!;
      args.push(`-n${n}:${start}:${start + sectors - 1}`, `-t${n}:${GPT_TYPE[p.type]}`, `-c${n}:${p.label ?? DEFAULT_LABEL[p.type]}`);
    });
    await run('sgdisk', [...args, dev]);
    return;
  }
  const lines = spec.partitions.map((p, i) => {
    const type = MBR_TYPE[p.type];
    if (!type) throw new FixtureError(`${dev}: partition type ${p.type} has no MBR equivalent`);
    return `start=${placed[i]!.start}, size=${placed[i]!.sectors}, type=${type}${p.bootable ? ', bootable' : ''}`;
  });
  await run('sfdisk', ['-q', '--no-reread', '--no-tell-kernel', dev], { input: ['label: dos', ...lines].join('\n') + '\n' });
}

/** Builds a real disk image `<workDir>/disk-*.img` from `spec`, with filesystems and files in its partitions. */
export async function buildDisk(spec: DiskSpec, workDir: string): Promise<BuiltDisk> {
  const sectorSize = spec.sectorSize ?? 512;
  const dir = await mkdtemp(join(workDir, 'disk-'));
  const path = join(dir, 'disk.img');
  const sizeBytes = spec.sizeMiB * MiB;
  await run('truncate', ['-s', String(sizeBytes), path]);
  const placed = placePartitions(spec, sectorSize);
  const loop = await attachDisk(path, sectorSize);
  const partitions: BuiltPartition[] = [];
  try {
    await writeTable(spec, loop.device, placed);
    await run('partx', ['-a', loop.device]);
    for (const [i, p] of spec.partitions.entries()) {
      const index = i + 1;
      const dev = loop.partition(index);
      await waitFor(dev);
      const label = p.label ?? DEFAULT_LABEL[p.type];
      await makeFs(p, dev, label, placed[i]!.start, sectorSize);
      const content = fileContents(p.files ?? {});
      await putFiles(FS_OF[p.type], dev, content, workDir);
      partitions.push({
        index,
        startByte: placed[i]!.start * sectorSize,
        sizeBytes: placed[i]!.sectors * sectorSize,
        volumeBytes: 0,
        blockBytes: BLOCK,
        type: p.type,
        fs: FS_OF[p.type],
        label,
        files: hashes(content),
      });
    }
  } finally {
    await loop.detach();
  }
  const fh = await open(path, 'r+');
  try {
    if (spec.grubExtraData) await writeGrub(fh);
    for (const [i, p] of partitions.entries()) {
      const geo = p.fs === 'ntfs' ? ntfsGeometry(await readAt(fh, p.startByte, 512), `${path} partition ${p.index}`) : { volumeBytes: p.sizeBytes, blockBytes: BLOCK };
      partitions[i] = { ...p, ...geo };
    }
  } finally {
    await fh.close();
  }
  return { path, sizeBytes, sectorSize, table: spec.table, partitions, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A sparse copy of a built disk in its own folder under `workDir`, to change without touching the original. */
export async function cloneDisk(disk: BuiltDisk, workDir: string): Promise<BuiltDisk> {
  const dir = await mkdtemp(join(workDir, 'disk-'));
  const path = join(dir, 'disk.img');
  await run('cp', ['--sparse=always', disk.path, path]);
  return { ...disk, path, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Writes (adds or overwrites) files in partition `index` of a built disk; returns the disk with updated hashes. */
export async function updateFiles(disk: BuiltDisk, index: number, files: Readonly<Record<string, FileContent>>, workDir: string): Promise<BuiltDisk> {
  const part = disk.partitions.find((p) => p.index === index);
  if (!part) throw new FixtureError(`${disk.path}: no partition ${index}`);
  const content = fileContents(files);
  const loop = await attachDisk(disk.path, disk.sectorSize);
  try {
    await putFiles(part.fs, loop.partition(index), content, workDir);
  } finally {
    await loop.detach();
  }
  const updated = { ...part, files: { ...part.files, ...hashes(content) } };
  return { ...disk, partitions: disk.partitions.map((p) => (p.index === index ? updated : p)) };
}

/** A byte range [start, end) of a file. */
export interface Range {
  readonly start: Bytes;
  readonly end: Bytes;
}

const COPY_CHUNK: Bytes = 1024 * 1024;
const ZERO_BLOCK = Buffer.alloc(BLOCK);

/**
 * Copies `length` bytes from `src@srcPos` to `dst@dstPos`, writing only 4 KiB blocks (counted
 * from srcPos) that hold data, so the destination stays sparse. Returns the written ranges of `dst`.
 */
export async function copySparse(src: FileHandle, srcPos: Bytes, length: Bytes, dst: FileHandle, dstPos: Bytes): Promise<Range[]> {
  const written: Range[] = [];
  for (let off = 0; off < length; off += COPY_CHUNK) {
    const n = Math.min(COPY_CHUNK, length - off);
    const buf = await readAt(src, srcPos + off, n);
    let runStart = -1;
    for (let b = 0; b < n + BLOCK; b += BLOCK) {
      const end = Math.min(b + BLOCK, n);
      const data = b < n && !buf.subarray(b, end).equals(ZERO_BLOCK.subarray(0, end - b));
      if (data && runStart < 0) runStart = b;
      if (!data && runStart >= 0) {
        const last = Math.min(b, n);
        await dst.write(buf, runStart, last - runStart, dstPos + off + runStart);
        addRange(written, dstPos + off + runStart, dstPos + off + last);
        runStart = -1;
      }
    }
  }
  return written;
}

/** Appends [start, end) to sorted ranges, merging with the last one when they touch. */
function addRange(ranges: Range[], start: Bytes, end: Bytes): void {
  const last = ranges[ranges.length - 1];
  if (last && last.end === start) ranges[ranges.length - 1] = { start: last.start, end };
  else ranges.push({ start, end });
}
