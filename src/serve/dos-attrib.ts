// The `user.DOSATTRIB` extended attribute Samba reads when a share stores DOS attributes: the
// hidden, system, read-only and archive bits and the creation time of a file inside a backup
// (docs/browsing.md §3). Samba's xattr_DOSATTRIB in NDR form (librpc/idl/xattr.idl), version 5,
// as Samba 4.17 writes it itself: an empty attrib_hex string, version and union switch (5, 5),
// padding to 4, then xattr_DosInfo5: valid_flags, attrib, create_time.

export const DOSATTRIB_XATTR = 'user.DOSATTRIB';
/** xattr_DOSATTRIB.version and its union's switch. */
const VERSION = 5;
/** XATTR_DOSINFO_ATTRIB and XATTR_DOSINFO_CREATE_TIME of xattr_DosInfo5.valid_flags. */
const XATTR_DOSINFO_ATTRIB = 0x1;
const XATTR_DOSINFO_CREATE_TIME = 0x10;
/** The FILE_ATTRIBUTE_* bits passed on ([MS-FSCC] 2.6): read-only, hidden, system, archive. What the mount itself is (folder, reparse point, sparse, compressed) Samba takes from the mount. */
const SHOWN_ATTRIBUTES = 0x1 | 0x2 | 0x4 | 0x20;
/** NTTIME: 100 ns units since 1601-01-01; the Unix epoch is 11 644 473 600 s later. */
const EPOCH_DIFFERENCE_MS = 11_644_473_600_000;
const NTTIME_PER_MS = 10_000n;
const BYTES = 24;

/** The attribute's value for a file with `dosAttributes` (FILE_ATTRIBUTE_* bits) and, where known, its creation time. */
export function dosAttrib(dosAttributes: number, birthtimeMs: number | undefined): Buffer {
  const b = Buffer.alloc(BYTES);
  b.writeUInt16LE(VERSION, 2);
  b.writeUInt16LE(VERSION, 4);
  const withTime = birthtimeMs !== undefined && Number.isFinite(birthtimeMs) && birthtimeMs > -EPOCH_DIFFERENCE_MS;
  b.writeUInt32LE(XATTR_DOSINFO_ATTRIB | (withTime ? XATTR_DOSINFO_CREATE_TIME : 0), 8);
  b.writeUInt32LE(dosAttributes & SHOWN_ATTRIBUTES, 12);
  if (withTime) b.writeBigUInt64LE(BigInt(Math.round(birthtimeMs + EPOCH_DIFFERENCE_MS)) * NTTIME_PER_MS, 16);
  return b;
}
