// Writes image backups of a built disk into a storage folder exactly as UrBackup's server lays
// them out with the cowraw format (docs/urbackup-raw-format.md §1–4; the bare § numbers below are its sections).
import { mkdir, open, readFile, readdir, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Bytes } from '../../src/base/units.js';
import { BLOCK, FixtureError, copySparse, readAt, type BuiltDisk, type BuiltPartition, type Range } from './disk-builder.js';
import { serializeMbrData, serializeWholeDiskMbr, type GptCopies, type MbrData, type PlacedBytes } from './mbr-writer.js';
import { run } from './run.js';

/** §2.1 `mbr_size`: the volume starts at this byte of the `.raw`. */
export const RAW_VOLUME_OFFSET: Bytes = 524288;
/** §4.4: one `.raw.hash` digest per 512 KiB of volume; also the incremental transfer unit (§1.3). */
export const HASH_CHUNK: Bytes = 512 * 1024;
/** §3.2 row 19: GRUB/VeraCrypt extra data = the 63 sectors after the MBR. */
const EXTRA_DATA_POS: Bytes = 512;
const EXTRA_DATA_BYTES: Bytes = 63 * 512;
/** §3.4: stand-in for the client's opaque ZIP: an empty ZIP (end-of-central-directory record only). */
const WHOLE_DISK_ZIP = Buffer.concat([Buffer.from('PK\x05\x06', 'latin1'), Buffer.alloc(18)]);

export type StorageKind = 'btrfs' | 'plain';

export interface ImageBackupSpec {
  readonly storage: string;
  readonly client: string;
  /** `%y%m%d-%H%M`, e.g. 240101-1200 (§1.1). */
  readonly time: string;
  /** The sanitised volume letter: 'C', 'SYSVOL', 'ESP', '_dev_sda1'. */
  readonly letter: string;
  readonly disk: BuiltDisk;
  /** BuiltPartition.index to image, or a whole-disk v100 image (§3.4). */
  readonly partition: number | 'whole-disk';
  /** btrfs: subvolumes and snapshots; plain: directories and reflink copies (§1.3). */
  readonly kind: StorageKind;
  /** Makes an incremental of this image folder (§1.2–1.3): changed 512 KiB chunks are rewritten in place. */
  readonly parentFolder?: string;
  /** Writes `.raw.sync` (and makes a btrfs subvolume read-only); default true. */
  readonly complete?: boolean;
}

export interface WrittenImage {
  readonly folder: string;
  readonly raw: string;
  readonly letter: string;
  readonly time: string;
  readonly partition: number | 'whole-disk';
  /** `.raw` size − 524288 (§2.2). */
  readonly volumeBytes: Bytes;
}

export const imageFolderName = (time: string, letter: string): string => `${time}_Image_${letter}`;
export const rawFileName = (time: string, letter: string): string => `Image_${letter}_${time}.raw`;

/** §2.1 table: the synthetic one-partition MBR at byte 0 of a `.raw`. */
export function syntheticMbr(volumeBytes: Bytes, signature: number): Buffer {
  const b = Buffer.alloc(512);
  // The server's fixed boot code (mbr_code.h) is not described there; it is never read by a restore.
  b.writeUInt32LE(signature, 440);
  b[446] = 0x80;
  Buffer.from([0xfe, 0xff, 0xff]).copy(b, 447);
  b[450] = 0x07;
  Buffer.from([0xfe, 0xff, 0xff]).copy(b, 451);
  b.writeUInt32LE(RAW_VOLUME_OFFSET / 512, 454);
  b.writeUInt32LE(Math.floor(volumeBytes / 512) % 2 ** 32, 458);
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

async function placed(fh: FileHandle, pos: Bytes, length: Bytes): Promise<PlacedBytes> {
  return { pos, data: await readAt(fh, pos, length) };
}

/** §3.2 rows 9–16: the GPT copies a client reads, at `lss`-based positions taken from the headers. */
async function captureGpt(fh: FileHandle, lss: Bytes, at: string): Promise<GptCopies> {
  const header = await placed(fh, lss, lss);
  const tablePart = async (h: Buffer): Promise<PlacedBytes> => {
    if (h.toString('latin1', 0, 8) !== 'EFI PART') throw new FixtureError(`${at}: no GPT header`);
    return placed(fh, Number(h.readBigUInt64LE(72)) * lss, h.readUInt32LE(80) * h.readUInt32LE(84));
  };
  const table = await tablePart(header.data);
  const backupHeader = await placed(fh, Number(header.data.readBigUInt64LE(32)) * lss, lss);
  return { header, table, backupHeader, backupTable: await tablePart(backupHeader.data) };
}

/** §3.2 row 18: GRUB (or VeraCrypt) boot code and bytes 512..32767 outside every partition. */
function hasBootloaderExtra(mbr: Buffer, disk: BuiltDisk): boolean {
  const has = (s: string): boolean => mbr.includes(Buffer.from(s, 'latin1'));
  const loader = has('VeraCrypt Boot Loader') || (has('GRUB') && has('Geom') && has('Read') && has('Error'));
  const free = disk.partitions.every((p) => p.startByte >= EXTRA_DATA_POS + EXTRA_DATA_BYTES || p.startByte + p.sizeBytes <= EXTRA_DATA_POS);
  return loader && free;
}

function uuidString(b: Buffer): string {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** §3.2 rows 5–7: Windows semantics for NTFS/FAT, Linux client semantics for ext4. */
async function volumeIdentity(fh: FileHandle, p: BuiltPartition, disk: BuiltDisk): Promise<Pick<MbrData, 'serial' | 'volumeName' | 'fsName'>> {
  const boot = await readAt(fh, p.startByte, 2048);
  switch (p.fs) {
    case 'ntfs':
      return { serial: String(boot.readUInt32LE(0x48)), volumeName: p.label, fsName: 'NTFS' };
    case 'vfat':
      return { serial: String(boot.readUInt32LE(0x43)), volumeName: p.label, fsName: 'FAT32' };
    case 'ext4':
      // superblock at 1024, s_uuid at 0x68; fs name = PARTLABEL (GPT) else TYPE.
      return { serial: uuidString(boot.subarray(1024 + 0x68, 1024 + 0x78)), volumeName: `LINUX:/dev/sda${p.index}`, fsName: disk.table === 'gpt' ? p.label : 'ext4' };
    case 'none':
      return { serial: '', volumeName: '', fsName: '' };
  }
}

/** The `.mbr` fields a client sends for partition `index` of `disk` (§3.2), read from the disk's real bytes. */
export async function captureMbrData(disk: BuiltDisk, index: number): Promise<MbrData> {
  const part = partitionOf(disk, index);
  const fh = await open(disk.path, 'r');
  try {
    const mbr = await readAt(fh, 0, 512);
    const gpt = disk.table === 'gpt' ? await captureGpt(fh, disk.sectorSize, disk.path) : undefined;
    const extra = !gpt && hasBootloaderExtra(mbr, disk) ? await placed(fh, EXTRA_DATA_POS, EXTRA_DATA_BYTES) : undefined;
    return { deviceNumber: 0, partitionNumber: index, ...(await volumeIdentity(fh, part, disk)), mbr, gpt, errmsg: '', extra };
  } finally {
    await fh.close();
  }
}

export function partitionOf(disk: BuiltDisk, index: number): BuiltPartition {
  const p = disk.partitions.find((q) => q.index === index);
  if (!p) throw new FixtureError(`${disk.path}: no partition ${index}`);
  return p;
}

/** What goes into the `.raw`: where it comes from on the disk and where it lands in the `.raw`. */
interface RawSource {
  readonly diskPos: Bytes;
  /** Bytes the client sends: whole client blocks only (§2.5). */
  readonly sentBytes: Bytes;
  readonly volumeBytes: Bytes;
  readonly rawPos: Bytes;
}

function rawSource(disk: BuiltDisk, partition: number | 'whole-disk'): RawSource {
  if (partition === 'whole-disk') return { diskPos: 0, sentBytes: disk.sizeBytes, volumeBytes: disk.sizeBytes, rawPos: 0 };
  const p = partitionOf(disk, partition);
  return { diskPos: p.startByte, sentBytes: sentBytes(p), volumeBytes: p.volumeBytes, rawPos: RAW_VOLUME_OFFSET };
}

/** §2.5: the client sends only whole client blocks of the volume; a trailing partial block stays zero. */
export function sentBytes(p: BuiltPartition): Bytes {
  return Math.floor(p.volumeBytes / p.blockBytes) * p.blockBytes;
}

/** §4.2 `.raw.bitmap`: 1 bit per 4 KiB block of the `.raw`, MSB-first. */
class RawBitmap {
  constructor(readonly bits: Buffer) {}

  static forSize(rawBytes: Bytes, inherited?: Buffer): RawBitmap {
    const len = Math.ceil(Math.ceil(rawBytes / BLOCK) / 8);
    const bits = Buffer.alloc(Math.max(len, inherited?.length ?? 0));
    inherited?.copy(bits);
    return new RawBitmap(bits);
  }

  set(r: Range, on: boolean): void {
    for (let b = Math.floor(r.start / BLOCK); b < Math.ceil(r.end / BLOCK); b++) {
      const mask = 1 << (7 - (b % 8));
      this.bits[b >> 3] = on ? this.bits[b >> 3]! | mask : this.bits[b >> 3]! & ~mask;
    }
  }
}

async function punchHole(path: string, r: Range): Promise<void> {
  await run('fallocate', ['--punch-hole', '--offset', String(r.start), '--length', String(r.end - r.start), path]);
}

/** Full image: every block with data; incremental: only 512 KiB chunks that differ from the parent's `.raw`. */
async function writeVolume(diskFh: FileHandle, rawFh: FileHandle, rawPath: string, src: RawSource, bitmap: RawBitmap, incremental: boolean): Promise<void> {
  for (let off = 0; off < src.sentBytes; off += HASH_CHUNK) {
    const n = Math.min(HASH_CHUNK, src.sentBytes - off);
    const chunk: Range = { start: src.rawPos + off, end: src.rawPos + off + n };
    if (incremental) {
      const now = await readAt(diskFh, src.diskPos + off, n);
      if (now.equals(await readAt(rawFh, chunk.start, n))) continue;
      await punchHole(rawPath, chunk);
      bitmap.set(chunk, false);
    }
    for (const r of await copySparse(diskFh, src.diskPos + off, n, rawFh, chunk.start)) bitmap.set(r, true);
  }
}

/** §4.4: SHA-256 per 512 KiB of the volume as stored (unsent blocks read as zeros). */
async function volumeHashes(rawFh: FileHandle, src: RawSource): Promise<Buffer> {
  const out: Buffer[] = [];
  for (let off = 0; off < src.volumeBytes; off += HASH_CHUNK) {
    const data = await readAt(rawFh, src.rawPos + off, Math.min(HASH_CHUNK, src.volumeBytes - off));
    out.push(createHash('sha256').update(data).digest());
  }
  return Buffer.concat(out);
}

/** The folder for a new image: a fresh subvolume/dir, or a snapshot/reflink copy of the parent (§1.3). */
async function prepareFolder(spec: ImageBackupSpec, folder: string, raw: string): Promise<Buffer | undefined> {
  await mkdir(join(spec.storage, spec.client), { recursive: true });
  if (!spec.parentFolder) {
    if (spec.kind === 'btrfs') await run('btrfs', ['subvolume', 'create', folder]);
    else await mkdir(folder);
    return undefined;
  }
  const parentRaw = (await readdir(spec.parentFolder)).find((n) => n.endsWith('.raw'));
  if (!parentRaw) throw new FixtureError(`${spec.parentFolder}: no .raw to base an incremental on`);
  if (spec.kind === 'btrfs') {
    await run('btrfs', ['subvolume', 'snapshot', spec.parentFolder, folder]);
    for (const ext of ['.hash', '.cbitmap', '.mbr', '.sync']) await rm(join(folder, parentRaw + ext), { force: true });
    await rename(join(folder, parentRaw), raw);
    await rename(join(folder, parentRaw + '.bitmap'), raw + '.bitmap');
  } else {
    await mkdir(folder);
    await run('cp', ['--reflink=always', join(spec.parentFolder, parentRaw), raw]);
    await run('cp', ['--reflink=always', join(spec.parentFolder, parentRaw + '.bitmap'), raw + '.bitmap']);
  }
  return readFile(raw + '.bitmap');
}

/** Writes one image backup folder (`.raw` + sidecars) of a partition or the whole disk of `spec.disk`. */
export async function writeImageBackup(spec: ImageBackupSpec): Promise<WrittenImage> {
  const folder = join(spec.storage, spec.client, imageFolderName(spec.time, spec.letter));
  const raw = join(folder, rawFileName(spec.time, spec.letter));
  const src = rawSource(spec.disk, spec.partition);
  const rawBytes = src.volumeBytes + RAW_VOLUME_OFFSET;
  const inherited = await prepareFolder(spec, folder, raw);
  const bitmap = RawBitmap.forSize(rawBytes, inherited);
  const diskFh = await open(spec.disk.path, 'r');
  const rawFh = await open(raw, inherited ? 'r+' : 'w+');
  try {
    await rawFh.truncate(rawBytes);
    if (src.rawPos === RAW_VOLUME_OFFSET) {
      await rawFh.write(syntheticMbr(src.volumeBytes, randomBytes(4).readUInt32LE()), 0, 512, 0);
      // writeMBR writes all 1024 header sectors through the CowFile (seen in genuine images).
      bitmap.set({ start: 0, end: RAW_VOLUME_OFFSET }, true);
    }
    await writeVolume(diskFh, rawFh, raw, src, bitmap, inherited !== undefined);
    await writeFile(raw + '.hash', await volumeHashes(rawFh, src));
  } finally {
    await rawFh.close();
    await diskFh.close();
  }
  await writeFile(raw + '.bitmap', bitmap.bits);
  const mbr = spec.partition === 'whole-disk' ? serializeWholeDiskMbr(WHOLE_DISK_ZIP) : serializeMbrData(await captureMbrData(spec.disk, spec.partition));
  await writeFile(raw + '.mbr', mbr);
  if (spec.complete ?? true) {
    await writeFile(raw + '.sync', '');
    if (spec.kind === 'btrfs') await run('btrfs', ['property', 'set', '-ts', folder, 'ro', 'true']);
  }
  return { folder, raw, letter: spec.letter, time: spec.time, partition: spec.partition, volumeBytes: src.volumeBytes };
}
