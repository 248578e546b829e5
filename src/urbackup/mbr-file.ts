// Parser for the `.raw.mbr` sidecar (docs/urbackup-raw-format.md §3; the bare § numbers below are its sections).
import type { Bytes } from '../base/units.js';
import { CwDataError, CwDataReader } from './cwdata.js';

/** `version` field values (§3.2 row 2). */
export const MBR_VERSION_MBR = 0;
export const MBR_VERSION_GPT = 1;
export const MBR_VERSION_WHOLE_DISK = 100;

/** `mbr_data` is the first 512 bytes of the physical disk (§3.2 row 8). */
const MBR_DATA_SIZE = 512;
/** `gpt_header_pos` equals the logical sector size, 512 or 4096 (§3.2 row 9). */
const LOGICAL_SECTOR_SIZES = [512, 4096] as const;
/** The GPT header structure is 92 bytes (§3.5). */
const GPT_HEADER_MIN = 92;

export type SectorSize = 512 | 4096;

/** A byte string and the absolute disk position restore writes it to (§6.1). */
export interface Placed {
  readonly pos: Bytes;
  readonly data: Buffer;
}

export interface GptCopies {
  readonly header: Placed;
  readonly table: Placed;
  readonly backupHeader: Placed;
  readonly backupTable: Placed;
}

export interface PartitionedMbrFile {
  readonly kind: 'partition';
  readonly version: 0 | 1;
  readonly deviceNumber: number;
  /** 1-based: the N-th non-empty partition of the stored table (§6.2). */
  readonly partitionNumber: number;
  readonly serial: string;
  readonly volumeName: string;
  readonly fsName: string;
  readonly mbr: Buffer;
  readonly sectorSize: SectorSize;
  readonly gpt?: GptCopies;
  readonly errmsg: string;
  readonly extra?: Placed;
  readonly warnings: readonly string[];
}

export interface WholeDiskMbrFile {
  readonly kind: 'whole-disk';
  readonly version: 100;
  readonly warnings: readonly string[];
}

export type MbrFile = PartitionedMbrFile | WholeDiskMbrFile;

export class MbrFileError extends Error {
  override name = 'MbrFileError';
  constructor(readonly path: string, reason: string) {
    super(`${path}: ${reason}`);
  }
}

/** Parses a `.raw.mbr` file's bytes; `path` only names the file in errors. */
export function parseMbrFile(buf: Buffer, path: string): MbrFile {
  try {
    return parse(new CwDataReader(buf));
  } catch (e) {
    if (e instanceof CwDataError) throw new MbrFileError(path, `corrupt .raw.mbr: ${e.message}`);
    if (e instanceof FormatError) throw new MbrFileError(path, e.message);
    throw e;
  }
}

class FormatError extends Error {}

function text(b: Buffer): string {
  return b.toString('utf8');
}

function parse(r: CwDataReader): MbrFile {
  if (r.remaining === 0) throw new FormatError('empty .raw.mbr file');
  const status = r.u8('status');
  if (status !== 1) throw new FormatError(`status byte is ${status}, not 1: the client reported a failure`);
  const version = r.u8('version');
  if (version === MBR_VERSION_WHOLE_DISK) {
    // §3.4: `01 64` followed by the client's opaque ZIP; nothing else to read.
    return { kind: 'whole-disk', version: 100, warnings: [] };
  }
  if (version !== MBR_VERSION_MBR && version !== MBR_VERSION_GPT) {
    throw new FormatError(`unknown .raw.mbr version ${version} (known: 0 MBR, 1 GPT, 100 whole disk)`);
  }
  const deviceNumber = r.i32('device_number');
  const partitionNumber = r.i32('partition_number');
  if (partitionNumber < 1) {
    throw new FormatError(`partition_number is ${partitionNumber}: a partition image needs a 1-based partition number`);
  }
  const serial = text(r.str('serial_number'));
  const volumeName = text(r.str('volume_name'));
  const fsName = text(r.str('fsn'));
  const mbr = r.str('mbr_data');
  if (mbr.length !== MBR_DATA_SIZE) throw new FormatError(`mbr_data is ${mbr.length} bytes, not ${MBR_DATA_SIZE}`);

  let sectorSize: SectorSize = 512;
  let gpt: GptCopies | undefined;
  if (version === MBR_VERSION_GPT) {
    const headerPos = r.i64('gpt_header_pos');
    const lss = LOGICAL_SECTOR_SIZES.find((s) => s === headerPos);
    if (lss === undefined) throw new FormatError(`gpt_header_pos is ${headerPos}, not a logical sector size (512 or 4096)`);
    sectorSize = lss;
    const header = r.str('gpt_header');
    if (header.length < GPT_HEADER_MIN || header.length > lss) {
      throw new FormatError(`gpt_header is ${header.length} bytes; expected one ${lss}-byte sector`);
    }
    const table = placed(r, 'gpt_table');
    const backupHeader = placed(r, 'backup_gpt_header');
    const backupTable = placed(r, 'backup_gpt_table');
    gpt = { header: { pos: headerPos, data: header }, table, backupHeader, backupTable };
  }
  const errmsg = text(r.str('errmsg'));
  const warnings: string[] = [];
  if (errmsg) warnings.push(`client reported: ${errmsg}`);
  let extra: Placed | undefined;
  if (r.remaining > 0) {
    const pos = r.varint('extra_data_pos');
    const data = r.str2('extra_data');
    extra = { pos, data };
    if (r.remaining > 0) warnings.push(`${r.remaining} unexpected trailing bytes ignored`);
  }
  const base = { deviceNumber, partitionNumber, serial, volumeName, fsName, mbr, sectorSize, errmsg, warnings };
  return version === MBR_VERSION_GPT
    ? { kind: 'partition', version: 1, ...base, gpt, ...(extra && { extra }) }
    : { kind: 'partition', version: 0, ...base, ...(extra && { extra }) };
}

function placed(r: CwDataReader, what: string): Placed {
  const pos = r.i64(`${what}_pos`);
  const data = r.str(what);
  return { pos, data };
}
