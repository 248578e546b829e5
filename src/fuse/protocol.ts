// The FUSE wire protocol (include/uapi/linux/fuse.h, version 7.40): the requests this filesystem
// receives (reads, and the writes of private overlays) and the replies it writes, as pure
// encoders and decoders of byte buffers.

/** Protocol version we speak; 7.40 added passthrough (fuse.h "7.40: add FUSE_PASSTHROUGH"). */
export const FUSE_KERNEL_VERSION = 7;
export const FUSE_KERNEL_MINOR_VERSION = 40;
/** fuse.h FUSE_ROOT_ID. */
export const FUSE_ROOT_ID = 1;

/** enum fuse_opcode (fuse.h). */
export const Op = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, READLINK: 5, SYMLINK: 6, MKNOD: 8, MKDIR: 9,
  UNLINK: 10, RMDIR: 11, RENAME: 12, LINK: 13, OPEN: 14, READ: 15, WRITE: 16, STATFS: 17,
  RELEASE: 18, FSYNC: 20, SETXATTR: 21, GETXATTR: 22, LISTXATTR: 23, REMOVEXATTR: 24, FLUSH: 25,
  INIT: 26, OPENDIR: 27, READDIR: 28, RELEASEDIR: 29, FSYNCDIR: 30, ACCESS: 34, CREATE: 35,
  INTERRUPT: 36, DESTROY: 38, BATCH_FORGET: 42, FALLOCATE: 43, READDIRPLUS: 44, RENAME2: 45, LSEEK: 46, COPY_FILE_RANGE: 47,
  TMPFILE: 51,
} as const;

/**
 * Operations that would change the tree or what others see: answered EROFS. WRITE and SETATTR
 * go to the served filesystem (a writer's private overlay, docs/overlays.md).
 */
export const WRITE_OPS: ReadonlySet<number> = new Set([
  Op.SYMLINK, Op.MKNOD, Op.MKDIR, Op.UNLINK, Op.RMDIR, Op.RENAME, Op.LINK,
  Op.SETXATTR, Op.REMOVEXATTR, Op.CREATE, Op.RENAME2, Op.COPY_FILE_RANGE, Op.TMPFILE,
]);

/** fuse_init_in/out flags (fuse.h); bits 32 and up travel in flags2. */
export const Init = {
  ASYNC_READ: 1n << 0n,
  /** FUSE_DO_READDIRPLUS: READDIRPLUS answers each entry with its lookup; without FUSE_READDIRPLUS_AUTO (1 << 14) the kernel always asks for it. */
  DO_READDIRPLUS: 1n << 13n,
  PARALLEL_DIROPS: 1n << 18n,
  MAX_PAGES: 1n << 22n,
  INIT_EXT: 1n << 30n,
  PASSTHROUGH: 1n << 37n,
} as const;

/** fuse_open_out.open_flags (fuse.h): the handle bypasses the inode's page cache. */
export const FOPEN_DIRECT_IO = 1 << 0;
export const FOPEN_KEEP_CACHE = 1 << 1;
/** The kernel keeps a directory's listing in its page cache (fs/fuse/readdir.c), dropped with its pages. */
export const FOPEN_CACHE_DIR = 1 << 3;
export const FOPEN_PASSTHROUGH = 1 << 7;

/** Requests that get no reply at all (fuse.h: FORGET, BATCH_FORGET; an INTERRUPT is answered by the interrupted request's own reply). */
export const NO_REPLY_OPS: ReadonlySet<number> = new Set([Op.FORGET, Op.BATCH_FORGET, Op.INTERRUPT]);

/** enum fuse_notify_code (fuse.h): sent with unique 0 and the code in fuse_out_header.error. */
const FUSE_NOTIFY_INVAL_INODE = 2;
const FUSE_NOTIFY_INVAL_ENTRY = 3;
const FUSE_NOTIFY_STORE = 4;

/** struct fuse_in_header: len, opcode, unique, nodeid, uid, gid, pid, total_extlen, padding. */
export const IN_HEADER_SIZE = 40;
/** The part of fuse_in_header up to and including `unique`: enough to answer a request. */
export const IN_HEADER_ID_SIZE = 16;
/** struct fuse_out_header: len, error, unique. */
export const OUT_HEADER_SIZE = 16;
/** struct fuse_attr. */
const ATTR_SIZE = 88;
/** struct fuse_entry_out: nodeid, generation, entry_valid, attr_valid, their nsecs, attr. */
const ENTRY_OUT_SIZE = 40 + ATTR_SIZE;
/** struct fuse_attr_out: attr_valid, attr_valid_nsec, dummy, attr. */
const ATTR_OUT_SIZE = 16 + ATTR_SIZE;
/** struct fuse_open_out: fh, open_flags, backing_id. */
export const OPEN_OUT_SIZE = 16;
/** struct fuse_init_out (fuse.h, 7.23 and later). */
const INIT_OUT_SIZE = 64;
/** struct fuse_kstatfs inside fuse_statfs_out. */
const STATFS_OUT_SIZE = 80;
/** struct fuse_dirent without its name: ino, off, namelen, type. */
const DIRENT_SIZE = 24;
/** struct fuse_backing_map: fd, flags, padding (the argument of FUSE_DEV_IOC_BACKING_OPEN). */
export const BACKING_MAP_SIZE = 16;

/**
 * The bytes of each request struct this server reads: the opcode table (handlers.ts) checks a
 * body holds them before its handler runs, so the fixed-size decoders below do not check again.
 */
export const INIT_IN_SIZE = 16;
export const GETATTR_IN_SIZE = 16;
export const OPEN_IN_SIZE = 4;
export const READ_IN_SIZE = 20;
export const RELEASE_IN_SIZE = 8;
/** struct fuse_write_in: fh, offset, size, write_flags, lock_owner, flags, padding; the data follows. */
export const WRITE_IN_SIZE = 40;
/** struct fuse_setattr_in (fuse.h). */
export const SETATTR_IN_SIZE = 88;
/**
 * Our fuse_init_out.max_write: the most one WRITE carries (a writer's overlay takes them). 1 MiB,
 * as reads (max_pages 256): a 1 MiB write is one request, not four.
 */
export const MAX_WRITE = 1024 * 1024;
/**
 * A buffer that holds any request: fs/fuse/dev.c refuses to read into less than the headers of a
 * WRITE plus max_write.
 */
export const REQUEST_BUFFER_SIZE = IN_HEADER_SIZE + WRITE_IN_SIZE + MAX_WRITE;
export const LSEEK_IN_SIZE = 20;
export const BATCH_FORGET_IN_SIZE = 8;
/** struct fuse_getxattr_in: size, padding; the name follows. */
export const GETXATTR_IN_SIZE = 8;
/** struct fuse_forget_one: nodeid, nlookup. */
const FORGET_ONE_SIZE = 16;

/** One request read from /dev/fuse; `body` is what follows the header. */
export interface Request {
  readonly opcode: number;
  /** The request's id, kept as its 8 raw bytes to echo in the reply. */
  readonly uniqueLo: number;
  readonly uniqueHi: number;
  readonly nodeid: number;
  /** The caller's fsuid (fuse_in_header.uid). */
  readonly uid: number;
  readonly body: Buffer;
}

/** A u64 field below 2^53 (offsets, handles), without a BigInt on the read path. */
function readU64(b: Buffer, at: number): number {
  return b.readUInt32LE(at) + b.readUInt32LE(at + 4) * 2 ** 32;
}

/**
 * The request in `buf[0, length)`. Throws for a frame shorter than the header or
 * whose length field disagrees; answerTo() still gives its id when it holds one.
 */
export function decodeRequest(buf: Buffer, length: number): Request {
  if (length < IN_HEADER_SIZE) throw new Error(`request of ${length} bytes is shorter than fuse_in_header`);
  const len = buf.readUInt32LE(0);
  if (len !== length) throw new Error(`request says ${len} bytes, read ${length}`);
  return {
    opcode: buf.readUInt32LE(4),
    uniqueLo: buf.readUInt32LE(8),
    uniqueHi: buf.readUInt32LE(12),
    nodeid: readU64(buf, 16),
    uid: buf.readUInt32LE(24),
    body: buf.subarray(IN_HEADER_SIZE, length),
  };
}

/** Just the id of a frame too broken to decode, so that it can still be answered; undefined when it has none. */
export function answerTo(buf: Buffer, length: number): Request | undefined {
  if (length < IN_HEADER_ID_SIZE) return undefined;
  return { opcode: buf.readUInt32LE(4), uniqueLo: buf.readUInt32LE(8), uniqueHi: buf.readUInt32LE(12), nodeid: 0, uid: 0, body: buf.subarray(0, 0) };
}

/** The opcode of the request frame in `frame` (fuse_in_header.opcode). */
export function frameOpcode(frame: Buffer): number {
  return frame.readUInt32LE(4);
}

/**
 * Writes the fuse_out_header of a successful reply of `bodyLength` bytes to the request frame
 * `frame` (its unique copied byte for byte): the request workers' answer, without decoding.
 */
export function writeOkHeaderFor(out: Buffer, frame: Buffer, bodyLength: number): void {
  out.writeUInt32LE(OUT_HEADER_SIZE + bodyLength, 0);
  out.writeInt32LE(0, 4);
  frame.copy(out, 8, 8, IN_HEADER_ID_SIZE);
}

/** Writes the fuse_out_header for a reply of `bodyLength` bytes at the start of `out`. */
export function writeOutHeader(out: Buffer, req: Request, error: number, bodyLength: number): void {
  out.writeUInt32LE(OUT_HEADER_SIZE + bodyLength, 0);
  out.writeInt32LE(error === 0 ? 0 : -error, 4);
  out.writeUInt32LE(req.uniqueLo, 8);
  out.writeUInt32LE(req.uniqueHi, 12);
}

/** A reply of only a header: success (0) or an errno. */
export function statusReply(req: Request, errno: number): Buffer {
  const out = Buffer.alloc(OUT_HEADER_SIZE);
  writeOutHeader(out, req, errno, 0);
  return out;
}

function reply(req: Request, bodyLength: number, fill: (body: Buffer) => void): Buffer {
  const out = Buffer.alloc(OUT_HEADER_SIZE + bodyLength);
  writeOutHeader(out, req, 0, bodyLength);
  fill(out.subarray(OUT_HEADER_SIZE));
  return out;
}

/** What a node shows to stat(2). */
export interface Attr {
  readonly ino: number;
  readonly size: number;
  /** In 512-byte units. */
  readonly blocks: number;
  readonly mtime: Date;
  readonly mode: number;
  readonly nlink: number;
  readonly uid: number;
  readonly gid: number;
  readonly blksize: number;
  /**
   * They differ by caller (a disk open for writing has a size per writer, docs/overlays.md §3):
   * the kernel gets them with no validity, so it asks again for its next stat.
   */
  readonly uncached?: boolean;
}

/**
 * A 64-bit field from a safe integer, as two 32-bit halves: a BigInt per field cost a listing of
 * 100 000 entries 60 ms and its garbage.
 */
function u64(b: Buffer, at: number, n: number): void {
  b.writeUInt32LE(n >>> 0, at);
  b.writeUInt32LE(Math.floor(n / 2 ** 32), at + 4);
}

/** A signed 64-bit field (a time before 1970), as u64. */
function i64(b: Buffer, at: number, n: number): void {
  b.writeUInt32LE(n >>> 0, at);
  b.writeInt32LE(Math.floor(n / 2 ** 32), at + 4);
}

/** struct fuse_attr at `at` of `b` (offsets, not views: a listing writes one per entry). */
function writeAttr(b: Buffer, at: number, a: Attr): void {
  const ms = a.mtime.getTime();
  const sec = Math.floor(ms / 1000);
  const nsec = (ms - sec * 1000) * 1e6;
  u64(b, at, a.ino);
  u64(b, at + 8, a.size);
  u64(b, at + 16, a.blocks);
  i64(b, at + 24, sec); // atime
  i64(b, at + 32, sec); // mtime
  i64(b, at + 40, sec); // ctime
  b.writeUInt32LE(nsec, at + 48);
  b.writeUInt32LE(nsec, at + 52);
  b.writeUInt32LE(nsec, at + 56);
  b.writeUInt32LE(a.mode, at + 60);
  b.writeUInt32LE(a.nlink, at + 64);
  b.writeUInt32LE(a.uid, at + 68);
  b.writeUInt32LE(a.gid, at + 72);
  b.writeUInt32LE(0, at + 76); // rdev
  b.writeUInt32LE(a.blksize, at + 80);
}

/** A validity in seconds as fuse.h's (seconds, nanoseconds) pair. */
function writeValid(b: Buffer, at: number, nsecAt: number, seconds: number): void {
  const whole = Math.floor(seconds);
  u64(b, at, whole);
  b.writeUInt32LE(Math.round((seconds - whole) * 1e9), nsecAt);
}

/** struct fuse_entry_out for `attr` at `at` of `b` (zero-filled). */
function writeEntryOut(b: Buffer, at: number, attr: Attr, entrySeconds: number, attrSeconds: number): void {
  u64(b, at, attr.ino); // nodeid: the inode number, stable for the life of the mount
  u64(b, at + 8, 0); // generation
  writeValid(b, at + 16, at + 32, entrySeconds);
  writeValid(b, at + 24, at + 36, attrSeconds);
  writeAttr(b, at + 40, attr);
}

export function entryReply(req: Request, attr: Attr, entrySeconds: number, attrSeconds: number): Buffer {
  return reply(req, ENTRY_OUT_SIZE, (b) => writeEntryOut(b, 0, attr, entrySeconds, attrSeconds));
}

/**
 * A negative entry: node id 0 with an entry timeout tells the kernel the name does not exist and
 * to remember that (fs/fuse/dir.c fuse_lookup_name), so repeated probes (Samba's desktop.ini,
 * case variants) cost no round trip until it expires or is invalidated.
 */
export function negativeEntryReply(req: Request, entrySeconds: number): Buffer {
  return reply(req, ENTRY_OUT_SIZE, (b) => writeValid(b, 16, 32, entrySeconds));
}

export function attrReply(req: Request, attr: Attr, attrSeconds: number): Buffer {
  return reply(req, ATTR_OUT_SIZE, (b) => {
    writeValid(b, 0, 8, attrSeconds);
    writeAttr(b, 16, attr);
  });
}

/** struct fuse_open_out at the start of `b`: fh, open_flags, backing_id. */
function writeOpenOut(b: Buffer, fh: number, openFlags: number, backingId: number): void {
  u64(b, 0, fh);
  b.writeUInt32LE(openFlags, 8);
  b.writeInt32LE(backingId, 12);
}

export function openReply(req: Request, fh: number, openFlags: number, backingId = 0): Buffer {
  return reply(req, OPEN_OUT_SIZE, (b) => writeOpenOut(b, fh, openFlags, backingId));
}

/** An OPEN's answer to the request in `frame` (a request worker's, which has no Request object): fuse_out_header into `header`, fuse_open_out into `body`. */
export function writeOpenReplyFor(header: Buffer, body: Buffer, frame: Buffer, fh: number, openFlags: number): void {
  writeOkHeaderFor(header, frame, OPEN_OUT_SIZE);
  writeOpenOut(body, fh, openFlags, 0);
}

/** fuse_in_header.nodeid of a request frame. */
export function frameNodeid(frame: Buffer): number {
  return readU64(frame, 16);
}

export interface Statfs {
  readonly blocks: number;
  /** Blocks free for writing (bfree and bavail): 0 when nothing can be written. */
  readonly free?: number;
  readonly files: number;
  readonly bsize: number;
  readonly namelen: number;
}

export function statfsReply(req: Request, s: Statfs): Buffer {
  return reply(req, STATFS_OUT_SIZE, (b) => {
    u64(b, 0, s.blocks);
    u64(b, 8, s.free ?? 0); // bfree
    u64(b, 16, s.free ?? 0); // bavail; ffree stays 0: no file can be made
    u64(b, 24, s.files);
    b.writeUInt32LE(s.bsize, 40);
    b.writeUInt32LE(s.namelen, 44);
    b.writeUInt32LE(s.bsize, 48); // frsize
  });
}

export interface InitIn {
  readonly major: number;
  readonly minor: number;
  readonly maxReadahead: number;
  /** flags, with flags2 above bit 31 when the kernel sets INIT_EXT. */
  readonly flags: bigint;
}

export function decodeInit(body: Buffer): InitIn {
  const flags = BigInt(body.readUInt32LE(12));
  const ext = (flags & Init.INIT_EXT) !== 0n && body.length >= 20;
  return {
    major: body.readUInt32LE(0),
    minor: body.readUInt32LE(4),
    maxReadahead: body.readUInt32LE(8),
    flags: ext ? flags | (BigInt(body.readUInt32LE(16)) << 32n) : flags,
  };
}

export interface InitOut {
  readonly maxReadahead: number;
  readonly flags: bigint;
  readonly maxBackground: number;
  readonly congestionThreshold: number;
  readonly maxWrite: number;
  /** Largest request in pages (FUSE_MAX_PAGES). */
  readonly maxPages: number;
  /** Filesystems that may be stacked under a passthrough file (0 without passthrough). */
  readonly maxStackDepth: number;
}

export function initReply(req: Request, o: InitOut): Buffer {
  return reply(req, INIT_OUT_SIZE, (b) => {
    b.writeUInt32LE(FUSE_KERNEL_VERSION, 0);
    b.writeUInt32LE(FUSE_KERNEL_MINOR_VERSION, 4);
    b.writeUInt32LE(o.maxReadahead, 8);
    b.writeUInt32LE(Number(o.flags & 0xffffffffn), 12);
    b.writeUInt16LE(o.maxBackground, 16);
    b.writeUInt16LE(o.congestionThreshold, 18);
    b.writeUInt32LE(o.maxWrite, 20);
    b.writeUInt32LE(1, 24); // time_gran: nanoseconds
    b.writeUInt16LE(o.maxPages, 28);
    b.writeUInt32LE(Number(o.flags >> 32n), 32); // flags2
    b.writeUInt32LE(o.maxStackDepth, 36);
  });
}

/** The name a LOOKUP asks for (NUL-terminated). */
export function decodeName(body: Buffer): string {
  const end = body.indexOf(0);
  if (end < 0) throw new Error('name without its terminating NUL');
  return body.toString('utf8', 0, end);
}

/**
 * The fields of a struct fuse_read_in at `at` of `b`: fh, offset, size (and fields a read-only
 * filesystem ignores). Separate, so that a request worker reads them from its request buffer
 * without a view or an object per request.
 */
export function readInFh(b: Buffer, at: number): number {
  return readU64(b, at);
}
export function readInOffset(b: Buffer, at: number): number {
  return readU64(b, at + 8);
}
export function readInSize(b: Buffer, at: number): number {
  return b.readUInt32LE(at + 16);
}

/** struct fuse_read_in (READ, READDIR, READDIRPLUS). */
export function decodeRead(body: Buffer): { fh: number; offset: number; size: number } {
  return { fh: readInFh(body, 0), offset: readInOffset(body, 0), size: readInSize(body, 0) };
}

/** struct fuse_open_in: flags. */
export function decodeOpenFlags(body: Buffer): number {
  return body.readUInt32LE(0);
}

/** The fh that leads struct fuse_release_in. */
export function decodeFh(body: Buffer): number {
  return readU64(body, 0);
}

/** A directory entry for READDIR: d_type is the file type bits of st_mode shifted down 12. */
export interface Dirent {
  readonly ino: number;
  readonly name: string;
  readonly mode: number;
  /**
   * Given: READDIRPLUS gives these attributes without a LOOKUP, and tells the filesystem of each
   * entry it gives (FuseFs.given), since the kernel counts it as a lookup. Absent: the
   * filesystem's lookup() says, unless it answers later (a promise), when the entry goes without.
   */
  readonly attr?: Attr;
}

/**
 * Packs entries from index `from` into at most `size` bytes (fuse.h FUSE_DIRENT_ALIGN: each
 * padded to 8). Each entry's `off` is the index of the next, so READDIR resumes there.
 */
export function direntsReply(req: Request, entries: readonly Dirent[], from: number, size: number): Buffer {
  const parts: Buffer[] = [];
  let used = 0;
  for (let i = from; i < entries.length; i++) {
    const nameBytes = Buffer.byteLength(entries[i]!.name, 'utf8');
    const len = (DIRENT_SIZE + nameBytes + 7) & ~7;
    if (used + len > size) break;
    const d = Buffer.alloc(len);
    writeDirent(d, 0, entries[i]!, i + 1, nameBytes);
    parts.push(d);
    used += len;
  }
  return reply(req, used, (b) => Buffer.concat(parts, used).copy(b));
}

/** struct fuse_dirent at `at`: ino, off, namelen, type (the file type bits of st_mode shifted down 12), name. */
/** struct fuse_dirent of `e`, its name `nameBytes` long in UTF-8, at `at` of `d`. */
function writeDirent(d: Buffer, at: number, e: Dirent, off: number, nameBytes: number): void {
  u64(d, at, e.ino);
  u64(d, at + 8, off);
  d.writeUInt32LE(nameBytes, at + 16);
  d.writeUInt32LE((e.mode >>> 12) & 0xf, at + 20);
  d.write(e.name, at + DIRENT_SIZE, nameBytes, 'utf8');
}

/** A folder's READDIRPLUS entries, encoded once: entry i is bytes [ends[i-1] (0 for the first), ends[i]). */
export interface DirentsPlus {
  readonly bytes: Buffer;
  readonly ends: readonly number[];
}

/**
 * Every entry as a struct fuse_direntplus: the fuse_entry_out its LOOKUP would give, then the
 * fuse_dirent (fuse.h FUSE_DIRENTPLUS_SIZE, padded to 8). `attrOf` undefined leaves the
 * fuse_entry_out zero: node id 0 means "no attributes" (fs/fuse/readdir.c
 * fuse_direntplus_link), and the kernel looks that name up when it needs it (`.` and `..` too).
 */
export function encodeDirentsPlus(entries: readonly Dirent[], attrOf: (e: Dirent) => Attr | undefined, entrySeconds: number, attrSeconds: number): DirentsPlus {
  const nameBytes = entries.map((e) => Buffer.byteLength(e.name, 'utf8'));
  const ends: number[] = [];
  let total = 0;
  for (const n of nameBytes) ends.push((total += (ENTRY_OUT_SIZE + DIRENT_SIZE + n + 7) & ~7));
  const bytes = Buffer.alloc(total);
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    const at = i === 0 ? 0 : ends[i - 1]!;
    const attr = attrOf(e);
    if (attr) writeEntryOut(bytes, at, attr, entrySeconds, attrSeconds);
    writeDirent(bytes, at + ENTRY_OUT_SIZE, e, i + 1, nameBytes[i]!);
  }
  return { bytes, ends };
}

/**
 * READDIRPLUS: the encoded entries from index `from` that fit in `size` bytes. `held(ino)` says
 * whether the kernel still holds fresh attributes of an entry's inode: that entry goes without
 * them (node id 0), so a listing the kernel has seen costs it no update per entry; false means
 * this reply gives them.
 */
/**
 * The entries from index `from` on that fit `size` bytes of a READDIRPLUS answer: bytes
 * [start, end) of the encoding, entries [from, last). `ends`: each entry's end, as encoded.
 */
export function plusSlice(ends: ArrayLike<number>, total: number, from: number, size: number): { start: number; end: number; last: number } {
  const start = from === 0 ? 0 : from <= ends.length ? ends[from - 1]! : total;
  let last = from;
  while (last < ends.length && ends[last]! - start <= size) last++;
  return { start, end: last === from ? start : ends[last - 1]!, last };
}

export function direntsPlusReply(req: Request, plus: DirentsPlus, from: number, size: number, held: (ino: number) => boolean): Buffer {
  const { start, end, last } = plusSlice(plus.ends, plus.bytes.length, from, size);
  return reply(req, end - start, (b) => {
    plus.bytes.copy(b, 0, start, end);
    for (let i = from, at = 0; i < last; at = plus.ends[i]! - start, i++) {
      const ino = readU64(b, at);
      if (ino !== 0 && held(ino)) b.fill(0, at, at + ENTRY_OUT_SIZE);
    }
  });
}

/** What a FORGET (fuse_forget_in: nlookup) or BATCH_FORGET (fuse_batch_forget_in: count, then fuse_forget_one: nodeid, nlookup) lets go of. */
export function decodeForgotten(req: Request): { readonly nodeid: number; readonly nlookup: number }[] {
  if (req.opcode === Op.FORGET) return [{ nodeid: req.nodeid, nlookup: req.body.length >= 8 ? readU64(req.body, 0) : 1 }];
  const count = req.body.readUInt32LE(0);
  const need = BATCH_FORGET_IN_SIZE + count * FORGET_ONE_SIZE;
  if (req.body.length < need) throw new Error(`fuse_forget_one list: ${req.body.length} bytes, need ${need}`);
  return Array.from({ length: count }, (_, i) => {
    const at = BATCH_FORGET_IN_SIZE + i * FORGET_ONE_SIZE;
    return { nodeid: readU64(req.body, at), nlookup: readU64(req.body, at + 8) };
  });
}

/** GETXATTR: the size asked for (0: only the value's size) and the attribute's name after fuse_getxattr_in. */
export function decodeGetxattr(body: Buffer): { size: number; name: string } {
  return { size: body.readUInt32LE(0), name: decodeName(body.subarray(GETXATTR_IN_SIZE)) };
}

/** GETXATTR's answer: fuse_getxattr_out (size, padding) when asked for the size, else the value. */
export function getxattrReply(req: Request, value: Buffer, askedSize: number): Buffer {
  if (askedSize === 0) return reply(req, 8, (b) => b.writeUInt32LE(value.length, 0));
  return reply(req, value.length, (b) => value.copy(b));
}

/** READLINK's answer: the target's bytes, no NUL. */
export function readlinkReply(req: Request, target: string): Buffer {
  const bytes = Buffer.from(target, 'utf8');
  return reply(req, bytes.length, (b) => bytes.copy(b));
}

/** struct fuse_getattr_in: getattr_flags, dummy, fh. FUSE_GETATTR_FH says fh is set. */
export function decodeGetattrFh(body: Buffer): number | undefined {
  const FUSE_GETATTR_FH = 1;
  return (body.readUInt32LE(0) & FUSE_GETATTR_FH) !== 0 ? readU64(body, 8) : undefined;
}

/** struct fuse_write_in: where to write, and the bytes. */
export function decodeWrite(body: Buffer): { fh: number; offset: number; data: Buffer } {
  const size = body.readUInt32LE(16);
  if (body.length < WRITE_IN_SIZE + size) throw new Error(`fuse_write_in: ${body.length - WRITE_IN_SIZE} bytes of data, says ${size}`);
  return { fh: readU64(body, 0), offset: readU64(body, 8), data: body.subarray(WRITE_IN_SIZE, WRITE_IN_SIZE + size) };
}

/** struct fuse_write_out: size, padding. */
export function writeReply(req: Request, size: number): Buffer {
  return reply(req, 8, (b) => b.writeUInt32LE(size, 0));
}

/** fuse_setattr_in.valid bits (fuse.h FATTR_*). */
export const Fattr = {
  MODE: 1 << 0, UID: 1 << 1, GID: 1 << 2, SIZE: 1 << 3, ATIME: 1 << 4, MTIME: 1 << 5, FH: 1 << 6,
  ATIME_NOW: 1 << 7, MTIME_NOW: 1 << 8, LOCKOWNER: 1 << 9, CTIME: 1 << 10, KILL_SUIDGID: 1 << 11,
} as const;

/** struct fuse_setattr_in: valid, padding, fh, size, then fields only chmod/chown/utimes set. */
export function decodeSetattr(body: Buffer): { valid: number; fh: number | undefined; size: number } {
  const valid = body.readUInt32LE(0);
  return { valid, fh: valid & Fattr.FH ? readU64(body, 8) : undefined, size: readU64(body, 16) };
}

/** struct fuse_lseek_in: fh, offset, whence (SEEK_DATA 3, SEEK_HOLE 4 from <unistd.h>). */
export function decodeLseek(body: Buffer): { fh: number; offset: number; whence: number } {
  return { fh: readU64(body, 0), offset: readU64(body, 8), whence: body.readUInt32LE(16) };
}

/** struct fuse_lseek_out: offset. */
export function lseekReply(req: Request, offset: number): Buffer {
  return reply(req, 8, (b) => u64(b, 0, offset));
}

/** A notification: fuse_out_header with unique 0 and the notify code in place of the error. */
function notification(code: number, body: Buffer): Buffer {
  const out = Buffer.alloc(OUT_HEADER_SIZE + body.length);
  out.writeUInt32LE(out.length, 0);
  out.writeInt32LE(code, 4);
  body.copy(out, OUT_HEADER_SIZE);
  return out;
}

/**
 * struct fuse_notify_inval_inode_out: ino, off, len. The cached attributes always go; with `pages`
 * the pages too, from offset 0 (len 0: to the end), else `off` is negative, which keeps them
 * (fs/fuse/inode.c fuse_reverse_inval_inode). A directory's pages hold its cached listing.
 */
export function invalInodeNotification(ino: number, pages = false): Buffer {
  const b = Buffer.alloc(24);
  u64(b, 0, ino);
  b.writeBigInt64LE(pages ? 0n : -1n, 8);
  b.writeBigInt64LE(0n, 16);
  return notification(FUSE_NOTIFY_INVAL_INODE, b);
}

/** struct fuse_notify_inval_entry_out: parent, namelen, flags, then the name and its NUL. */
export function invalEntryNotification(parent: number, name: string): Buffer {
  const n = Buffer.from(name, 'utf8');
  const b = Buffer.alloc(16 + n.length + 1);
  u64(b, 0, parent);
  b.writeUInt32LE(n.length, 8);
  n.copy(b, 16);
  return notification(FUSE_NOTIFY_INVAL_ENTRY, b);
}

/**
 * struct fuse_notify_store_out: nodeid, offset, size, padding, then the bytes, which the kernel
 * puts into the inode's page cache. From offset 0 and to the file's end, the last page is zeroed
 * past the end and every page is marked up to date (fs/fuse/dev.c fuse_notify_store).
 */
export function storeNotification(ino: number, data: Buffer): Buffer {
  const b = Buffer.alloc(STORE_HEADER_SIZE + data.length);
  writeStoreHeader(b, ino, data.length);
  data.copy(b, STORE_HEADER_SIZE);
  return b;
}

/** fuse_out_header and fuse_notify_store_out (nodeid, offset 0, size, padding): what goes before the bytes of a store notification. */
export const STORE_HEADER_SIZE = OUT_HEADER_SIZE + 24;

/** A store notification's header for `size` bytes of `ino` from offset 0, into the first STORE_HEADER_SIZE bytes of `b` (a request worker's reused buffer). */
export function writeStoreHeader(b: Buffer, ino: number, size: number): void {
  b.writeUInt32LE(STORE_HEADER_SIZE + size, 0);
  b.writeInt32LE(FUSE_NOTIFY_STORE, 4);
  u64(b, 8, 0); // unique 0: a notification
  u64(b, OUT_HEADER_SIZE, ino);
  u64(b, OUT_HEADER_SIZE + 8, 0);
  b.writeUInt32LE(size, OUT_HEADER_SIZE + 16);
  b.writeUInt32LE(0, OUT_HEADER_SIZE + 20);
}
