// A file as the sum of its MFT records: the base record and, through $ATTRIBUTE_LIST, the
// extension records that hold the rest of its attributes (docs/filesystems-ntfs.md §6).
import type { Bytes } from '../../base/units.js';
import type { Volume } from '../volume-fs.js';
import { parseAttributeList } from './attribute-list.js';
import { joinExtents, type Stream } from './attribute-runs.js';
import { parseFileName, type FileName } from './file-name.js';
import { check } from './format-error.js';
import type { Mft } from './mft.js';
import { AttrType, RECORD_IS_DIRECTORY, type Attribute, type MftRecord } from './mft-record.js';
import { parseStandardInformation, type StandardInformation } from './standard-information.js';
import { readStream } from './stream-read.js';

/** A bound on an attribute list ($ATTRIBUTE_LIST is at most 256 KiB in practice) and on what we read of a value. */
const MAX_LIST_BYTES: Bytes = 1024 * 1024;
/** A bound on the extension records of one file (each holds some hundred runs). */
const MAX_EXTENSION_RECORDS = 4096;
/** [MS-FSCC] §2.1.2: a reparse point holds at most 16 KiB of data. */
const MAX_REPARSE_BYTES: Bytes = 16 * 1024 + 8;

export interface Inode {
  readonly record: number;
  readonly sequence: number;
  readonly linkCount: number;
  readonly isDirectory: boolean;
  readonly attributes: readonly Attribute[];
  readonly info: StandardInformation;
  readonly names: readonly FileName[];
}

/** What an inode weighs in a cache: its attributes and their runs. */
export function inodeWeight(inode: Inode): number {
  return inode.attributes.reduce((n, a) => n + 1 + (a.nonResident?.runs.length ?? 0), 1);
}

export interface Geometry {
  readonly volume: Volume;
  readonly mft: Mft;
  readonly clusterSize: Bytes;
}

export function attributesOf(inode: { readonly attributes: readonly Attribute[] }, type: number, name: string): Attribute[] {
  return inode.attributes.filter((a) => a.type === type && a.name === name);
}

/** One non-resident attribute's extents joined; undefined when it is absent, an error when it is resident. */
export function streamOf(attrs: readonly Attribute[], clusterSize: Bytes): Stream | undefined {
  if (attrs.length === 0) return undefined;
  const extents = attrs.flatMap((a) => (a.nonResident ? [a.nonResident] : []));
  check(extents.length === attrs.length, `attribute 0x${attrs[0]!.type.toString(16)} is resident where it must not be, or twice`);
  return joinExtents(extents, clusterSize);
}

/** The whole value of an attribute (resident, or non-resident up to `max` bytes). */
export async function valueOf(g: Geometry, attrs: readonly Attribute[], max: Bytes, what: string): Promise<Buffer | undefined> {
  if (attrs.length === 0) return undefined;
  if (attrs.length === 1 && attrs[0]!.value) return attrs[0]!.value;
  const s = streamOf(attrs, g.clusterSize)!;
  check(s.dataSize <= max, `${what} of ${s.dataSize} bytes is over ${max}`);
  return readStream(g.volume, s, g.clusterSize, 0, s.dataSize);
}

/** The attributes of record `n`'s extension records, named by its attribute list, after its own. */
async function withExtensions(g: Geometry, n: number, base: MftRecord, listAttrs: readonly Attribute[]): Promise<Attribute[]> {
  const list = (await valueOf(g, listAttrs, MAX_LIST_BYTES, '$ATTRIBUTE_LIST'))!;
  const records = [...new Set(parseAttributeList(list).map((e) => e.record.record))].filter((r) => r !== n);
  check(records.length <= MAX_EXTENSION_RECORDS, `${records.length} extension records`);
  const out = [...base.attributes];
  const extensions = await Promise.all(records.map((r) => g.mft.record(r)));
  for (const [i, ext] of extensions.entries()) {
    check(ext.base.record === n, `extension record ${records[i]} belongs to record ${ext.base.record}`);
    out.push(...ext.attributes);
  }
  return out;
}

function inodeOf(n: number, base: MftRecord, attributes: readonly Attribute[]): Inode {
  const si = attributes.find((a) => a.type === AttrType.standardInformation && a.name === '')?.value;
  check(si !== undefined, 'no resident $STANDARD_INFORMATION');
  const names: FileName[] = [];
  for (const a of attributes) if (a.type === AttrType.fileName && a.value) names.push(parseFileName(a.value));
  return {
    record: n,
    sequence: base.sequence,
    linkCount: base.linkCount,
    isDirectory: (base.flags & RECORD_IS_DIRECTORY) !== 0,
    attributes,
    info: parseStandardInformation(si),
    names,
  };
}

/** The inode of base record `base`: at once when its attributes are all in it, else once its extension records are read. */
function fromBase(g: Geometry, n: number, base: MftRecord): Inode | Promise<Inode> {
  check(base.base.record === 0, `record ${n} is an extension record of ${base.base.record}`);
  const list = attributesOf(base, AttrType.attributeList, '');
  if (list.length === 0) return inodeOf(n, base, base.attributes);
  return withExtensions(g, n, base, list).then((attributes) => inodeOf(n, base, attributes));
}

/** Inode `n` (or the promise of it, when it has extension records) if its base record's MFT block is cached; else undefined. */
export function inodeNow(g: Geometry, n: number): Inode | Promise<Inode> | undefined {
  const base = g.mft.recordNow(n);
  return base && fromBase(g, n, base);
}

export async function loadInode(g: Geometry, n: number): Promise<Inode> {
  return fromBase(g, n, g.mft.recordNow(n) ?? (await g.mft.record(n)));
}

/** The reparse point's bytes, or undefined when the file has none. */
export function reparseOf(g: Geometry, inode: Inode): Promise<Buffer | undefined> {
  return valueOf(g, attributesOf(inode, AttrType.reparsePoint, ''), MAX_REPARSE_BYTES, '$REPARSE_POINT');
}
