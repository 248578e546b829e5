// A strict checker for the VHD/VHDX files synthvhd makes: everything in docs/vhd-vhdx.md §4
// "A strict checker should also assert", which qemu-img and libvhdi do not catch.
import { open } from 'node:fs/promises';
import { chsGeometry } from '../../src/container/chs.js';
import { crc32c } from '../../src/container/crc32c.js';
import { VHD_FOOTER_SIZE, VHD_MAX_DISK_SIZE, onesComplementChecksum, vhdChecksum } from '../../src/container/vhd.js';
import {
  VHDX_ALIGNMENT, VHDX_HEADER_1_OFFSET, VHDX_HEADER_2_OFFSET, VHDX_HEADER_SIZE, VHDX_LEAVE_BLOCK_ALLOCATED,
  VHDX_MAX_DISK_SIZE, VHDX_METADATA_ITEMS, VHDX_METADATA_ITEMS_OFFSET, VHDX_PAYLOAD_BLOCK_FULLY_PRESENT,
  VHDX_PAYLOAD_BLOCK_NOT_PRESENT, VHDX_PAYLOAD_BLOCK_ZERO, VHDX_REGION, VHDX_REGION_TABLE_1_OFFSET, VHDX_REGION_TABLE_2_OFFSET,
  VHDX_REGION_TABLE_SIZE, VHDX_VERSION,
} from '../../src/container/vhdx.js';

const MiB = 1024 * 1024;
/** Creator applications for which QEMU sizes a VHD by Current Size (§1.4). */
const CURRENT_SIZE_CREATORS = ['win ', 'qem2', 'd2v ', 'CTXS', 'tap\0'];

/** Reads `length` bytes at `pos` (zeros past the end of the file). */
async function readAt(path: string, pos: number, length: number): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, pos);
    return buf;
  } finally {
    await fh.close();
  }
}

async function fileSize(path: string): Promise<number> {
  const fh = await open(path, 'r');
  try {
    return (await fh.stat()).size;
  } finally {
    await fh.close();
  }
}

function isZero(b: Buffer): boolean {
  return b.every((x) => x === 0);
}

function u64(b: Buffer, at: number): number {
  return Number(b.readBigUInt64LE(at));
}

/** Problems with the fields of a VHD footer of the given disk type (§1.2); returns the Current Size. */
function checkFooter(f: Buffer, diskType: 2 | 3, bad: (what: string) => void): number {
  if (f.toString('latin1', 0, 8) !== 'conectix') bad('footer cookie is not conectix');
  if (f.readUInt32BE(8) !== 2) bad(`features 0x${f.readUInt32BE(8).toString(16)} is not 0x2`);
  if (f.readUInt32BE(12) !== 0x10000) bad(`format version 0x${f.readUInt32BE(12).toString(16)} is not 1.0`);
  if (diskType === 2 && f.readBigUInt64BE(16) !== 0xffffffffffffffffn) bad('data offset is not all ones');
  if (diskType === 3 && f.readBigUInt64BE(16) !== 512n) bad(`data offset ${f.readBigUInt64BE(16)} does not point at a dynamic header at 512`);
  const creator = f.toString('latin1', 28, 32);
  if (!CURRENT_SIZE_CREATORS.includes(creator)) bad(`creator '${creator}' makes QEMU size the disk by CHS`);
  const host = f.toString('latin1', 36, 40);
  if (host !== 'Wi2k' && host !== 'Mac ') bad(`creator host OS '${host}' is neither Wi2k nor Mac`);
  const current = Number(f.readBigUInt64BE(48));
  if (Number(f.readBigUInt64BE(40)) !== current) bad(`original size ${f.readBigUInt64BE(40)} differs from current size ${current}`);
  if (current % 512 !== 0) bad(`current size ${current} is not a multiple of 512`);
  if (current > VHD_MAX_DISK_SIZE) bad(`current size ${current} is over 2040 GiB`);
  const chs = chsGeometry(current);
  const got = { cylinders: f.readUInt16BE(56), heads: f.readUInt8(58), sectorsPerTrack: f.readUInt8(59) };
  if (got.cylinders !== chs.cylinders || got.heads !== chs.heads || got.sectorsPerTrack !== chs.sectorsPerTrack) {
    bad(`CHS ${got.cylinders}/${got.heads}/${got.sectorsPerTrack} is not the spec's ${chs.cylinders}/${chs.heads}/${chs.sectorsPerTrack}`);
  }
  if (f.readUInt32BE(60) !== diskType) bad(`disk type ${f.readUInt32BE(60)} is not ${diskType} (${diskType === 2 ? 'fixed' : 'dynamic'})`);
  if (f.readUInt32BE(64) !== vhdChecksum(f)) bad(`footer checksum 0x${f.readUInt32BE(64).toString(16)} is wrong, expected 0x${vhdChecksum(f).toString(16)}`);
  if (isZero(f.subarray(68, 84))) bad('unique id is zero');
  if (f[84] !== 0) bad('saved state is set');
  if (!isZero(f.subarray(85))) bad('reserved footer bytes are not zero');
  return current;
}

/** Problems with a fixed VHD (§1, §4); empty when it is good. */
export async function checkVhd(path: string): Promise<string[]> {
  const problems: string[] = [];
  const bad = (what: string): void => void problems.push(`${path}: ${what}`);
  const length = await fileSize(path);
  if (length < VHD_FOOTER_SIZE || length % 512 !== 0) {
    bad(`file length ${length} is not a positive multiple of 512`);
    return problems;
  }
  if ((await readAt(path, 0, 8)).toString('latin1') === 'conectix') bad('file starts with a footer copy: QEMU would take it for a dynamic VHD');
  const current = checkFooter(await readAt(path, length - VHD_FOOTER_SIZE, VHD_FOOTER_SIZE), 2, bad);
  if (length !== current + VHD_FOOTER_SIZE) bad(`file length ${length} is not current size ${current} + 512`);
  return problems;
}

/** Block size of the dynamic VHDs synthvhd writes, and the alignment of each block's data. */
const DYNAMIC_VHD_BLOCK = 2 * MiB;
const DATA_ALIGNMENT = 4096;

/**
 * Problems with a dynamic VHD (VHD spec "Dynamic Disk Header Format", "Block Allocation Table
 * and Data Blocks"): the footer copy at 0 equals the footer, header fields and checksum, every
 * BAT entry inside the file with its data on a 4 KiB boundary, no two blocks overlapping, every
 * stored sector marked in its bitmap.
 */
export async function checkDynamicVhd(path: string): Promise<string[]> {
  const problems: string[] = [];
  const bad = (what: string): void => void problems.push(`${path}: ${what}`);
  const length = await fileSize(path);
  if (length < 3 * 512 || length % 512 !== 0) {
    bad(`file length ${length} is not a multiple of 512 with room for footer, header and footer copy`);
    return problems;
  }
  const f = await readAt(path, length - VHD_FOOTER_SIZE, VHD_FOOTER_SIZE);
  const current = checkFooter(f, 3, bad);
  if (!(await readAt(path, 0, VHD_FOOTER_SIZE)).equals(f)) bad('the footer copy at 0 differs from the footer');
  const h = await readAt(path, 512, 1024);
  if (h.toString('latin1', 0, 8) !== 'cxsparse') bad("dynamic header cookie is not 'cxsparse'");
  if (h.readBigUInt64BE(8) !== 0xffffffffffffffffn) bad('dynamic header data offset is not all ones');
  if (h.readUInt32BE(24) !== 0x10000) bad(`dynamic header version 0x${h.readUInt32BE(24).toString(16)} is not 1.0`);
  if (h.readUInt32BE(36) !== onesComplementChecksum(h, 36)) bad('dynamic header checksum is wrong');
  if (!isZero(h.subarray(40, 1024))) bad('parent fields, locators or reserved bytes of the dynamic header are not zero');
  const tableOffset = Number(h.readBigUInt64BE(16));
  const entries = h.readUInt32BE(28);
  const blockSize = h.readUInt32BE(32);
  if (blockSize !== DYNAMIC_VHD_BLOCK) bad(`block size ${blockSize} is not 2 MiB`);
  if (entries !== Math.ceil(current / blockSize)) bad(`max table entries ${entries} is not ⌈${current} / ${blockSize}⌉`);
  if (tableOffset < 1536 || tableOffset % 512 !== 0) bad(`table offset ${tableOffset} is not a sector after the header`);
  const batEnd = tableOffset + Math.ceil((4 * entries) / 512) * 512;
  if (problems.length > 0) return problems;
  const bat = await readAt(path, tableOffset, 4 * entries);
  const bitmapSize = Math.ceil(blockSize / 512 / 8 / 512) * 512;
  const spans: [number, number, number][] = [];
  for (let k = 0; k < entries; k++) {
    const sector = bat.readUInt32BE(4 * k);
    if (sector === 0xffffffff) continue;
    const at = sector * 512;
    const end = at + bitmapSize + blockSize;
    if (at < batEnd) bad(`block ${k} at ${at} lies before the end of the BAT (${batEnd})`);
    if (end > length - VHD_FOOTER_SIZE) bad(`block ${k} [${at}, ${end}) runs into the footer or past the end of the file`);
    if ((at + bitmapSize) % DATA_ALIGNMENT !== 0) bad(`block ${k}: data at ${at + bitmapSize} is not on a 4 KiB boundary`);
    spans.push([at, end, k]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]![0] < spans[i - 1]![1]) bad(`blocks ${spans[i - 1]![2]} and ${spans[i]![2]} overlap`);
  }
  for (const [at, , k] of spans) {
    if (!(await readAt(path, at, bitmapSize)).every((x) => x === 0xff)) bad(`block ${k}: its sector bitmap leaves sectors out (Windows reads them as zeros)`);
  }
  return problems;
}

interface Region {
  readonly offset: number;
  readonly length: number;
}

interface Header {
  readonly sequenceNumber: bigint;
  readonly log: Region;
}

function checkVhdxHeader(h: Buffer, name: string, bad: (what: string) => void): Header | null {
  if (h.toString('latin1', 0, 4) !== 'head') {
    bad(`${name}: signature is not 'head'`);
    return null;
  }
  const copy = Buffer.from(h);
  copy.writeUInt32LE(0, 4);
  if (crc32c(copy) !== h.readUInt32LE(4)) {
    bad(`${name}: CRC-32C is wrong`);
    return null;
  }
  if (!isZero(h.subarray(48, 64))) bad(`${name}: LogGuid is not zero`);
  if (h.readUInt16LE(64) !== 0) bad(`${name}: LogVersion ${h.readUInt16LE(64)} is not 0`);
  if (h.readUInt16LE(66) !== VHDX_VERSION) bad(`${name}: Version ${h.readUInt16LE(66)} is not 1`);
  const logLength = h.readUInt32LE(68);
  const logOffset = u64(h, 72);
  if (logLength === 0 || logLength % VHDX_ALIGNMENT !== 0) bad(`${name}: LogLength ${logLength} is not a positive multiple of 1 MiB`);
  if (logOffset < VHDX_ALIGNMENT || logOffset % VHDX_ALIGNMENT !== 0) bad(`${name}: LogOffset ${logOffset} is not a multiple of 1 MiB ≥ 1 MiB`);
  if (!isZero(h.subarray(80))) bad(`${name}: reserved bytes are not zero`);
  return { sequenceNumber: h.readBigUInt64LE(8), log: { offset: logOffset, length: logLength } };
}

function checkRegionTable(t: Buffer, bad: (what: string) => void): { bat?: Region; metadata?: Region } {
  const found: { bat?: Region; metadata?: Region } = {};
  if (t.toString('latin1', 0, 4) !== 'regi') {
    bad("region table: signature is not 'regi'");
    return found;
  }
  const copy = Buffer.from(t);
  copy.writeUInt32LE(0, 4);
  if (crc32c(copy) !== t.readUInt32LE(4)) bad('region table: CRC-32C is wrong');
  const count = t.readUInt32LE(8);
  if (count !== 2) bad(`region table: EntryCount ${count} is not 2`);
  if (t.readUInt32LE(12) !== 0) bad('region table: reserved field is not zero');
  for (let i = 0; i < Math.min(count, 2047); i++) {
    const at = 16 + 32 * i;
    const guid = t.subarray(at, at + 16);
    const region = { offset: u64(t, at + 16), length: t.readUInt32LE(at + 24) };
    const kind = guid.equals(VHDX_REGION.bat) ? 'bat' : guid.equals(VHDX_REGION.metadata) ? 'metadata' : null;
    if (!kind) {
      bad(`region table: entry ${i} has an unknown GUID ${guid.toString('hex')}`);
      continue;
    }
    if (found[kind]) bad(`region table: ${kind} region listed twice`);
    found[kind] = region;
    if (t.readUInt32LE(at + 28) !== 1) bad(`region table: ${kind} region Required is ${t.readUInt32LE(at + 28)}, not 1`);
    if (region.offset < VHDX_ALIGNMENT || region.offset % VHDX_ALIGNMENT !== 0) bad(`${kind} region offset ${region.offset} is not a multiple of 1 MiB ≥ 1 MiB`);
    if (region.length === 0 || region.length % VHDX_ALIGNMENT !== 0) bad(`${kind} region length ${region.length} is not a positive multiple of 1 MiB`);
  }
  if (!found.bat) bad('region table: no BAT region');
  if (!found.metadata) bad('region table: no metadata region');
  return found;
}

interface Parameters {
  readonly blockSize: number;
  readonly diskSize: number;
  readonly logicalSectorSize: number;
  /** LeaveBlockAllocated: every block is stored, at P + k·B. */
  readonly fixed: boolean;
}

function checkMetadata(m: Buffer, bad: (what: string) => void): Parameters | null {
  if (m.toString('latin1', 0, 8) !== 'metadata') {
    bad("metadata: signature is not 'metadata'");
    return null;
  }
  const count = m.readUInt16LE(10);
  if (m.readUInt16LE(8) !== 0 || !isZero(m.subarray(12, 32))) bad('metadata: reserved table header bytes are not zero');
  if (count !== 5) bad(`metadata: EntryCount ${count} is not 5`);
  const items = new Map<string, Buffer>();
  const spans: Region[] = [];
  for (let i = 0; i < Math.min(count, 2047); i++) {
    const at = 32 + 32 * i;
    const guid = m.subarray(at, at + 16);
    const offset = m.readUInt32LE(at + 16);
    const length = m.readUInt32LE(at + 20);
    const flags = m.readUInt32LE(at + 24);
    const entry = Object.entries(VHDX_METADATA_ITEMS).find(([, item]) => item.guid.equals(guid));
    if (!entry) {
      bad(`metadata: entry ${i} has an unknown item ${guid.toString('hex')}`);
      continue;
    }
    const [name, spec] = entry;
    if (items.has(name)) bad(`metadata: ${name} listed twice`);
    if (flags !== spec.flags) bad(`metadata: ${name} flags 0x${flags.toString(16)} are not 0x${spec.flags.toString(16)}`);
    if (m.readUInt32LE(at + 28) !== 0) bad(`metadata: ${name} reserved field is not zero`);
    if (length !== spec.length) bad(`metadata: ${name} length ${length} is not ${spec.length}`);
    if (offset < VHDX_METADATA_ITEMS_OFFSET || offset + length > m.length) {
      bad(`metadata: ${name} at ${offset}+${length} is not inside the region after its 64 KiB table`);
      continue;
    }
    if (spans.some((s) => offset < s.offset + s.length && s.offset < offset + length)) bad(`metadata: ${name} overlaps another item`);
    spans.push({ offset, length });
    items.set(name, m.subarray(offset, offset + length));
  }
  const fp = items.get('fileParameters');
  const size = items.get('virtualDiskSize');
  const id = items.get('virtualDiskId');
  const lss = items.get('logicalSectorSize');
  const pss = items.get('physicalSectorSize');
  if (!fp || !size || !id || !lss || !pss || fp.length < 8 || size.length < 8 || lss.length < 4 || pss.length < 4) {
    bad('metadata: a required item is missing or short');
    return null;
  }
  const blockSize = fp.readUInt32LE(0);
  const diskSize = u64(size, 0);
  const logicalSectorSize = lss.readUInt32LE(0);
  if (blockSize < MiB || blockSize > 256 * MiB || (blockSize & (blockSize - 1)) !== 0) bad(`BlockSize ${blockSize} is not a power of 2 in 1–256 MiB`);
  const fileFlags = fp.readUInt32LE(4);
  if (fileFlags !== VHDX_LEAVE_BLOCK_ALLOCATED && fileFlags !== 0) bad(`file parameter flags 0x${fileFlags.toString(16)} are neither LeaveBlockAllocated only nor none`);
  if (logicalSectorSize !== 512 && logicalSectorSize !== 4096) bad(`LogicalSectorSize ${logicalSectorSize} is not 512 or 4096`);
  if (pss.readUInt32LE(0) !== 512 && pss.readUInt32LE(0) !== 4096) bad(`PhysicalSectorSize ${pss.readUInt32LE(0)} is not 512 or 4096`);
  if (diskSize === 0 || diskSize % logicalSectorSize !== 0 || diskSize > VHDX_MAX_DISK_SIZE) {
    bad(`VirtualDiskSize ${diskSize} is not a positive multiple of the logical sector ≤ 64 TiB`);
  }
  if (isZero(id)) bad('VirtualDiskId is zero');
  return { blockSize, diskSize, logicalSectorSize, fixed: fileFlags === VHDX_LEAVE_BLOCK_ALLOCATED };
}

/**
 * Problems with a VHDX laid out as in docs/vhd-vhdx.md §2.1 (§4); empty when it is good. A fixed
 * one (LeaveBlockAllocated) stores block k at P + k·B; a dynamic one stores each FULLY_PRESENT block
 * on a 1 MiB boundary inside the file, none overlapping another or a region, NOT_PRESENT ones nowhere.
 */
export async function checkVhdx(path: string): Promise<string[]> {
  const problems: string[] = [];
  const bad = (what: string): void => void problems.push(`${path}: ${what}`);
  const length = await fileSize(path);
  if ((await readAt(path, 0, 8)).toString('latin1') !== 'vhdxfile') bad("file type identifier is not 'vhdxfile'");

  const h1 = checkVhdxHeader(await readAt(path, VHDX_HEADER_1_OFFSET, VHDX_HEADER_SIZE), 'header 1', bad);
  const h2 = checkVhdxHeader(await readAt(path, VHDX_HEADER_2_OFFSET, VHDX_HEADER_SIZE), 'header 2', bad);
  if (!h1 || !h2) return problems;
  if (h1.sequenceNumber === h2.sequenceNumber) bad(`both headers have SequenceNumber ${h1.sequenceNumber}`);
  if (h1.log.offset !== h2.log.offset || h1.log.length !== h2.log.length) bad('the two headers place the log differently');
  const log = h1.log;

  const rt1 = await readAt(path, VHDX_REGION_TABLE_1_OFFSET, VHDX_REGION_TABLE_SIZE);
  const rt2 = await readAt(path, VHDX_REGION_TABLE_2_OFFSET, VHDX_REGION_TABLE_SIZE);
  if (!rt1.equals(rt2)) bad('the two region table copies differ');
  const regions = checkRegionTable(rt1, bad);
  if (!regions.bat || !regions.metadata) return problems;
  const bat = regions.bat;
  const all: [string, Region][] = [['log', log], ['BAT', bat], ['metadata', regions.metadata]];
  for (const [i, [a, ra]] of all.entries()) {
    if (ra.offset + ra.length > length) bad(`${a} region ends past the end of the file`);
    for (const [b, rb] of all.slice(i + 1)) {
      if (ra.offset < rb.offset + rb.length && rb.offset < ra.offset + ra.length) bad(`${a} and ${b} regions overlap`);
    }
  }

  const params = checkMetadata(await readAt(path, regions.metadata.offset, regions.metadata.length), bad);
  if (!params) return problems;
  const blocks = Math.ceil(params.diskSize / params.blockSize);
  const chunkRatio = (2 ** 23 * params.logicalSectorSize) / params.blockSize;
  const needed = blocks + Math.floor((blocks - 1) / chunkRatio);
  if (bat.length < 8 * needed) {
    bad(`BAT region of ${bat.length} bytes is too small for ${needed} entries`);
    return problems;
  }
  const entries = await readAt(path, bat.offset, bat.length);
  let payload: number | null = null;
  const stored: [number, number][] = [];
  for (let i = 0; i < bat.length / 8; i++) {
    const lo = entries.readUInt32LE(8 * i);
    const value = lo + entries.readUInt32LE(8 * i + 4) * 2 ** 32;
    const state = lo & 7;
    const offset = value - (lo & 0xfffff);
    if ((lo & 0xffff8) !== 0) bad(`BAT entry ${i}: reserved bits are set`);
    const isBitmap = (i + 1) % (chunkRatio + 1) === 0;
    if (i >= needed || isBitmap) {
      if (value !== 0) bad(`BAT entry ${i}: ${isBitmap ? 'sector bitmap entry' : 'entry past the last payload block'} is not zero`);
      continue;
    }
    const k = i - Math.floor(i / (chunkRatio + 1));
    if (state === VHDX_PAYLOAD_BLOCK_ZERO || (state === VHDX_PAYLOAD_BLOCK_NOT_PRESENT && !params.fixed)) {
      if (offset !== 0) bad(`BAT entry ${i}: a block without data has a non-zero offset`);
    } else if (state !== VHDX_PAYLOAD_BLOCK_FULLY_PRESENT) {
      bad(`BAT entry ${i}: state ${state} is not FULLY_PRESENT, ZERO${params.fixed ? '' : ' or NOT_PRESENT'}`);
    } else if (params.fixed) {
      payload ??= offset - k * params.blockSize;
      if (offset !== payload + k * params.blockSize) bad(`BAT entry ${i}: block ${k} is at ${offset}, not at P + k·B = ${payload + k * params.blockSize}`);
    } else {
      if (offset % VHDX_ALIGNMENT !== 0) bad(`BAT entry ${i}: block ${k} at ${offset} is not on a 1 MiB boundary`);
      stored.push([offset, k]);
    }
  }
  if (payload !== null) {
    const end = payload + blocks * params.blockSize;
    if (payload % VHDX_ALIGNMENT !== 0) bad(`payload offset ${payload} is not a multiple of 1 MiB`);
    for (const [name, r] of all) {
      if (payload < r.offset + r.length && r.offset < end) bad(`payload [${payload}, ${end}) overlaps the ${name} region`);
    }
    if (payload < VHDX_ALIGNMENT) bad(`payload offset ${payload} lies in the header section`);
    if (length < end) bad(`file length ${length} is short of P + N·B = ${end}`);
  }
  stored.sort((a, b) => a[0] - b[0]);
  let fileEnd = Math.max(...all.map(([, r]) => r.offset + r.length));
  for (const [n, [offset, k]] of stored.entries()) {
    const end = offset + params.blockSize;
    if (offset < VHDX_ALIGNMENT) bad(`block ${k} at ${offset} lies in the header section`);
    for (const [name, r] of all) if (offset < r.offset + r.length && r.offset < end) bad(`block ${k} at ${offset} overlaps the ${name} region`);
    const prev = stored[n - 1];
    if (prev && offset < prev[0] + params.blockSize) bad(`blocks ${prev[1]} and ${k} overlap at ${offset}`);
    if (end > length) bad(`block ${k} [${offset}, ${end}) runs past the end of the file (${length})`);
    fileEnd = Math.max(fileEnd, end);
  }
  if (!params.fixed && length !== fileEnd) bad(`file length ${length} is not the end of its last block or region (${fileEnd})`);
  return problems;
}
