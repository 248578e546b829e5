// --unique-ids: a disk identity of its own per backup, so that several restore points of one disk
// can be attached side by side (Windows takes a disk with a colliding signature or GUID offline;
// docs/vhd-vhdx.md §3.1; docs/urbackup-raw-format.md §6.5).
import { nameBasedId } from '../base/guid.js';
import type { PartitionedMbrFile, Placed } from '../urbackup/mbr-file.js';
import { HDR_DISK_GUID, gptEntries, gptHeaderCrc, gptTableCrc, parseGptHeader } from '../partition-table/gpt.js';
import { MBR_SIGNATURE_OFFSET } from '../partition-table/mbr-table.js';

/** GPT header fields rewritten here (UEFI specification, "GPT Header"; docs/urbackup-raw-format.md §3.5). */
const HDR_CRC = 16;
const HDR_TABLE_CRC = 88;
const ENT_UNIQUE_GUID = 16;

function newTable(table: Placed, header: Buffer, guidOf: (index: number) => Buffer): Placed {
  const h = parseGptHeader(header);
  const data = Buffer.from(table.data);
  for (const e of gptEntries(data, h)) guidOf(e.index).copy(data, (e.index - 1) * h.entrySize + ENT_UNIQUE_GUID);
  return { pos: table.pos, data };
}

function newHeader(header: Placed, table: Buffer, diskGuid: Buffer): Placed {
  const data = Buffer.from(header.data);
  const h = parseGptHeader(data);
  diskGuid.copy(data, HDR_DISK_GUID);
  data.writeUInt32LE(gptTableCrc(table, h), HDR_TABLE_CRC);
  data.writeUInt32LE(gptHeaderCrc(data, h.headerSize), HDR_CRC);
  return { pos: header.pos, data };
}

/**
 * The `.mbr` with identities derived from `seed` (client and backup): the MBR disk signature, or
 * the GPT disk GUID and every partition's unique GUID in both GPT copies, with their CRCs.
 * Everything else stays byte for byte. Throws GptError for a GPT it cannot parse.
 */
export function withUniqueIds(mbr: PartitionedMbrFile, seed: string): PartitionedMbrFile {
  if (!mbr.gpt) {
    const sector0 = Buffer.from(mbr.mbr);
    // A zero signature means "none" to Windows, which would then write one: avoid it.
    const sig = nameBasedId(`${seed}:mbr-signature`).readUInt32LE(0) || 1;
    sector0.writeUInt32LE(sig, MBR_SIGNATURE_OFFSET);
    return { ...mbr, mbr: sector0 };
  }
  const g = mbr.gpt;
  const diskGuid = nameBasedId(`${seed}:gpt-disk`);
  const guidOf = (index: number): Buffer => nameBasedId(`${seed}:gpt-partition:${index}`);
  const table = newTable(g.table, g.header.data, guidOf);
  const backupTable = newTable(g.backupTable, g.backupHeader.data, guidOf);
  return {
    ...mbr,
    gpt: {
      header: newHeader(g.header, table.data, diskGuid),
      table,
      backupHeader: newHeader(g.backupHeader, backupTable.data, diskGuid),
      backupTable,
    },
  };
}
