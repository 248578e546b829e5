// Serialises a `.raw.mbr` sidecar the way the UrBackup client writes it (docs/urbackup-raw-format.md §3; the bare § numbers below are its sections).
// Written from that description alone, independent of the project's parser, so tests can cross-check it.
import type { Bytes } from '../../src/base/units.js';

/** §3.2 row 1: the status byte of a successful reply. */
const STATUS_OK = 1;
/** §3.2 row 2 / §3.3: version of an MBR-partitioned disk. */
const MBR_VERSION_MBR = 0;
/** §3.2 row 2 / §3.3: version of a GPT disk. */
const MBR_VERSION_GPT = 1;
/** §3.4: version of the whole-disk ("ZIP") variant. */
const MBR_VERSION_WHOLE_DISK = 100;

/** One stored copy of a GPT structure: its absolute byte position on the original disk and its bytes. */
export interface PlacedBytes {
  readonly pos: Bytes;
  readonly data: Buffer;
}

/** The four GPT structures of a v1 `.mbr` (§3.2 rows 9–16), in the order they are serialised. */
export interface GptCopies {
  readonly header: PlacedBytes;
  readonly table: PlacedBytes;
  readonly backupHeader: PlacedBytes;
  readonly backupTable: PlacedBytes;
}

/** The fields of a v0/v1 `.mbr` (§3.2); `gpt` present means version 1. */
export interface MbrData {
  readonly deviceNumber: number;
  readonly partitionNumber: number;
  readonly serial: string;
  readonly volumeName: string;
  readonly fsName: string;
  /** The disk's first 512 bytes (§3.2 row 8). */
  readonly mbr: Buffer;
  readonly gpt?: GptCopies;
  readonly errmsg: string;
  /** §3.2 rows 18–19: GRUB/VeraCrypt sectors after the MBR. */
  readonly extra?: PlacedBytes;
}

/** §3.1: the SQLite3 varint, big-endian base-128; a 9th byte carries a full 8 bits. */
export function sqliteVarint(value: bigint | number): Buffer {
  let v = BigInt(value);
  if (v < 0n || v > 0xffffffffffffffffn) throw new RangeError(`varint out of range: ${value}`);
  if (v >> 56n !== 0n) {
    const out = Buffer.alloc(9);
    out[8] = Number(v & 0xffn);
    v >>= 8n;
    for (let i = 7; i >= 0; i--) {
      out[i] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    return out;
  }
  const rev: number[] = [];
  do {
    rev.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  } while (v !== 0n);
  rev[0]! &= 0x7f;
  return Buffer.from(rev.reverse());
}

/** Little-endian CWData writer (§3.1). */
class CWData {
  private readonly parts: Buffer[] = [];

  char(v: number): this {
    this.parts.push(Buffer.from([v]));
    return this;
  }

  int(v: number): this {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.parts.push(b);
    return this;
  }

  int64(v: Bytes): this {
    const b = Buffer.alloc(8);
    b.writeBigInt64LE(BigInt(v));
    this.parts.push(b);
    return this;
  }

  /** `addString`: u32 LE byte length + raw bytes. */
  string(v: Buffer | string): this {
    const data = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
    const len = Buffer.alloc(4);
    len.writeUInt32LE(data.length);
    this.parts.push(len, data);
    return this;
  }

  varint(v: number): this {
    this.parts.push(sqliteVarint(v));
    return this;
  }

  /** `addString2`: varint byte length + raw bytes. */
  string2(v: Buffer): this {
    this.parts.push(sqliteVarint(v.length), v);
    return this;
  }

  bytes(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** A v0 (MBR) or v1 (GPT) `.raw.mbr`, field by field as in §3.2. */
export function serializeMbrData(d: MbrData): Buffer {
  const w = new CWData()
    .char(STATUS_OK)
    .char(d.gpt ? MBR_VERSION_GPT : MBR_VERSION_MBR)
    .int(d.deviceNumber)
    .int(d.partitionNumber)
    .string(d.serial)
    .string(d.volumeName)
    .string(d.fsName)
    .string(d.mbr);
  if (d.gpt) {
    for (const p of [d.gpt.header, d.gpt.table, d.gpt.backupHeader, d.gpt.backupTable]) w.int64(p.pos).string(p.data);
  }
  w.string(d.errmsg);
  if (d.extra) w.varint(d.extra.pos).string2(d.extra.data);
  return w.bytes();
}

/** A v100 `.raw.mbr` as the server stores it (§3.4): `01 64` followed by the client's opaque ZIP bytes. */
export function serializeWholeDiskMbr(zip: Buffer): Buffer {
  return Buffer.concat([new CWData().char(STATUS_OK).char(MBR_VERSION_WHOLE_DISK).bytes(), zip]);
}
