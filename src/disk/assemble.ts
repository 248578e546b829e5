// Whole-disk assembly from partition images, as UrBackup's restore writes them onto a blank
// disk (docs/urbackup-raw-format.md §6).
import { type GptHeader, gptEntries, gptEntryBytes, gptTableCrc, guidToString, parseGptHeader, GptError } from '../partition-table/gpt.js';
import { type Layout, LayoutError, type Piece, type SourceFile, paint } from './layout.js';
import type { Bytes } from '../base/units.js';
import { MBR_SIGNATURE_OFFSET, hasBootSignature, isExtended, mbrEntries, mbrExtent } from '../partition-table/mbr-table.js';
import type { PartitionedMbrFile, SectorSize } from '../urbackup/mbr-file.js';

const MiB = 1024 * 1024;

/** One partition image: its parsed `.raw.mbr` and where its volume lies in its `.raw`. */
export interface PartitionImage {
  readonly mbr: PartitionedMbrFile;
  /** The `.raw.mbr` `mbr` was parsed from: errors in its fields name it. */
  readonly mbrPath: string;
  readonly raw: SourceFile;
  /** Byte offset of the volume inside the `.raw` (524288). */
  readonly volumeOffset: Bytes;
  readonly volumeLength: Bytes;
}

export interface DiskPartition {
  /** 1-based rank among the non-empty entries: what `partition_number` refers to. */
  readonly number: number;
  readonly start: Bytes;
  readonly length: Bytes;
  readonly description: string;
  /** The `.raw` whose volume fills this partition, if any. */
  readonly imagedFrom?: string;
  readonly volumeLength?: Bytes;
}

export interface AssembledDisk {
  readonly layout: Layout;
  readonly sectorSize: SectorSize;
  readonly table: 'gpt' | 'mbr' | 'whole-disk';
  /** MBR disk signature or GPT disk GUID, as text. */
  readonly identity: string;
  readonly partitions: readonly DiskPartition[];
  readonly warnings: readonly string[];
}

export class AssembleError extends Error {
  override name = 'AssembleError';
  constructor(readonly path: string, reason: string) {
    super(`${path}: ${reason}`);
  }
}

interface TableView {
  readonly table: 'gpt' | 'mbr';
  readonly identity: string;
  readonly partitions: { start: Bytes; length: Bytes; description: string }[];
  /** Bytes the table itself says the disk spans. */
  readonly extent: Bytes;
  readonly warnings: string[];
}

function mbrView(mbr: PartitionedMbrFile): TableView {
  const warnings: string[] = [];
  if (!hasBootSignature(mbr.mbr)) warnings.push('stored MBR has no 55AA boot signature');
  const entries = mbrEntries(mbr.mbr);
  return {
    table: 'mbr',
    identity: mbr.mbr.readUInt32LE(MBR_SIGNATURE_OFFSET).toString(16).padStart(8, '0'),
    partitions: entries.map((e) => ({
      start: e.startLba * 512,
      length: e.sectors * 512,
      description: `MBR slot ${e.slot} type 0x${e.type.toString(16).padStart(2, '0')}${e.bootable ? ' bootable' : ''}${isExtended(e) ? ' (extended)' : ''}`,
    })),
    extent: mbrExtent(entries),
    warnings,
  };
}

function gptView(mbr: PartitionedMbrFile): TableView {
  const gpt = mbr.gpt!;
  const lss = mbr.sectorSize;
  const warnings: string[] = [];
  let h: GptHeader;
  try {
    h = parseGptHeader(gpt.header.data);
  } catch (e) {
    throw e instanceof GptError ? new FormatProblem(`primary GPT header: ${e.message}`) : e;
  }
  if (!h.headerCrcOk) warnings.push('primary GPT header CRC does not match (written as stored, like UrBackup restore)');
  if (gpt.table.data.length < h.numEntries * h.entrySize) {
    throw new FormatProblem(`GPT table is ${gpt.table.data.length} bytes, shorter than ${h.numEntries} × ${h.entrySize}`);
  }
  if (gptTableCrc(gpt.table.data, h) !== h.tableCrc) warnings.push('GPT partition table CRC does not match the header (written as stored)');
  let entries: ReturnType<typeof gptEntries>;
  try {
    entries = gptEntries(gpt.table.data, h);
  } catch (e) {
    throw e instanceof GptError ? new FormatProblem(`GPT table: ${e.message}`) : e;
  }
  for (const e of entries) {
    if (e.lastLba < e.firstLba) throw new FormatProblem(`GPT entry ${e.index} ends (LBA ${e.lastLba}) before it starts (LBA ${e.firstLba})`);
  }
  // docs/urbackup-raw-format.md §6.3: the disk ends with the backup header's sector.
  const extent = Math.max(gpt.backupHeader.pos, h.backupLba * lss) + lss;
  return {
    table: 'gpt',
    identity: guidToString(h.diskGuid),
    partitions: entries.map((e) => ({ ...gptEntryBytes(e, lss), description: `GPT entry ${e.index}${e.name ? ` "${e.name}"` : ''} type ${guidToString(e.typeGuid)}` })),
    extent,
    warnings,
  };
}

class FormatProblem extends Error {}

/** Views by parsed `.raw.mbr`: the catalog hands every backup of a machine the same parse of their identical files. */
const views = new WeakMap<PartitionedMbrFile, TableView>();

/** The table of a `.raw.mbr`, parsed once per parse of the file. Throws FormatProblem. */
function tableView(mbr: PartitionedMbrFile): TableView {
  let v = views.get(mbr);
  if (!v) views.set(mbr, (v = mbr.version === 1 ? gptView(mbr) : mbrView(mbr)));
  return v;
}

/** Disk identity text of an image's own `.mbr` (for matching partners to their disk). */
export function diskIdentity(mbr: PartitionedMbrFile): string {
  try {
    return tableView(mbr).identity;
  } catch {
    return '';
  }
}

/**
 * Builds the disk of `main` with the volumes of `main` and its `partners` (SYSVOL/ESP) placed
 * into their partitions. The table comes from the main image's `.mbr`; each image's
 * `partition_number` picks the N-th non-empty entry.
 */
export function assembleDisk(main: PartitionImage, partners: readonly PartitionImage[] = []): AssembledDisk {
  const mbr = main.mbr;
  let view: TableView;
  try {
    view = tableView(mbr);
  } catch (e) {
    if (e instanceof FormatProblem) throw new AssembleError(main.mbrPath, e.message);
    throw e;
  }
  const sectorSize = mbr.sectorSize;
  const pieces: Piece[] = [{ kind: 'bytes', start: 0, data: mbr.mbr }];
  if (mbr.gpt) {
    const g = mbr.gpt;
    for (const p of [g.header, g.table, g.backupHeader, g.backupTable]) pieces.push({ kind: 'bytes', start: p.pos, data: p.data });
  }
  if (mbr.extra) pieces.push({ kind: 'bytes', start: mbr.extra.pos, data: mbr.extra.data });

  const imaged = new Map<number, PartitionImage>();
  for (const img of [main, ...partners]) {
    const n = img.mbr.partitionNumber;
    const prev = imaged.get(n);
    // A wrong partition_number is a field of the image's own `.raw.mbr`: name that file.
    if (prev) throw new AssembleError(img.mbrPath, `partition number ${n} is already filled by ${prev.raw.path}`);
    const part = view.partitions[n - 1];
    if (!part) {
      throw new AssembleError(img.mbrPath, `partition number ${n} does not exist: the disk table${img === main ? '' : ` (from ${main.mbrPath})`} has ${view.partitions.length} non-empty entries`);
    }
    if (img.volumeLength > part.length) {
      throw new AssembleError(img.raw.path, `volume of ${img.volumeLength} bytes is larger than its partition ${n} (${part.length} bytes): "Disk too small for image"`);
    }
    imaged.set(n, img);
    pieces.push({ kind: 'file', start: part.start, length: img.volumeLength, source: img.raw, offset: img.volumeOffset });
  }

  let size = view.extent;
  for (const p of pieces) size = Math.max(size, p.start + (p.kind === 'bytes' ? p.data.length : p.length));
  // An MBR disk's end is not recorded; round up to 1 MiB so every container accepts it.
  if (view.table === 'mbr') size = Math.ceil(size / MiB) * MiB;

  const partitions: DiskPartition[] = view.partitions.map((p, i) => {
    const img = imaged.get(i + 1);
    return { number: i + 1, ...p, ...(img && { imagedFrom: img.raw.path, volumeLength: img.volumeLength }) };
  });
  let layout: Layout;
  try {
    layout = paint(size, pieces);
  } catch (e) {
    // Positions near 2^53 in a corrupt table: no disk can hold them.
    if (e instanceof LayoutError) throw new AssembleError(main.mbrPath, `the partition table places data outside any possible disk: ${e.message}`);
    throw e;
  }
  return {
    layout,
    sectorSize,
    table: view.table,
    identity: view.identity,
    partitions,
    warnings: [...mbr.warnings, ...view.warnings, ...partners.flatMap((p) => p.mbr.warnings)],
  };
}

/** A whole-disk (v100) image: the `.raw` bytes [0, length) are the disk. */
export function wholeDiskImage(raw: SourceFile, length: Bytes): AssembledDisk {
  const size = Math.ceil(length / 512) * 512;
  const layout = paint(size, [{ kind: 'file', start: 0, length, source: raw, offset: 0 }]);
  return { layout, sectorSize: 512, table: 'whole-disk', identity: '', partitions: [], warnings: [] };
}
