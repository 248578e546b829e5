// The opcode table: one uniform handler per opcode the session answers, with the bytes of its
// request struct, checked in one place before it runs (like libfuse's fuse_ll_ops[] and
// go-fuse's operationHandlers). docs/fuse-protocol.md §5 says how each opcode is answered.
import { constants as osConstants } from 'node:os';
import type { AttrsGiven } from './attrs-given.js';
import type { Directories, OpenDir } from './directories.js';
import { FuseError, type FuseFs } from './fuse-fs.js';
import { type PassthroughIds, REFUSED } from './passthrough.js';
import {
  type Attr, attrReply, BATCH_FORGET_IN_SIZE, decodeFh, decodeForgotten, decodeGetattrFh, decodeGetxattr, decodeInit, decodeLseek, decodeName,
  decodeOpenFlags, decodeRead, decodeSetattr, decodeWrite, type Dirent, type DirentsPlus, direntsPlusReply, direntsReply, entryReply, FOPEN_CACHE_DIR,
  FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE, FOPEN_PASSTHROUGH, FUSE_KERNEL_VERSION, GETATTR_IN_SIZE, GETXATTR_IN_SIZE, getxattrReply, Init, INIT_IN_SIZE, initReply,
  LSEEK_IN_SIZE, lseekReply, MAX_WRITE, negativeEntryReply, Op, OPEN_IN_SIZE, openReply, READ_IN_SIZE, readInFh, readInOffset, readInSize, readlinkReply,
  RELEASE_IN_SIZE, type Request, SETATTR_IN_SIZE, statfsReply, storeNotification, WRITE_IN_SIZE, WRITE_OPS, writeOutHeader, writeReply,
} from './protocol.js';
import type { ReadBuffers } from './read-buffers.js';
import type { ReplyWriter } from './reply-writer.js';
import type { SessionOptions } from './session-options.js';
import { shareListing } from './shared-listing.js';
import type { WorkerPool } from './workers.js';

const E = osConstants.errno;

/** What a handler answers with: the session's parts (session.ts). */
export interface OpContext {
  readonly fs: FuseFs;
  readonly o: SessionOptions;
  readonly out: ReplyWriter;
  readonly given: AttrsGiven;
  readonly dirs: Directories;
  readonly passthrough: PassthroughIds;
  readonly workers: WorkerPool;
  readonly buffers: ReadBuffers;
  /** Answers when `work` settles: `reply` builds the answer, and a failure of either is the errno. */
  later<T>(req: Request, work: () => Promise<T>, reply: (value: T) => void): void;
  /** The kernel's INIT is answered. */
  initialized(): void;
}

export interface OpHandler {
  /** Bytes of the request struct the handler reads: a shorter body is answered EIO without running it. */
  readonly inSize: number;
  readonly struct: string;
  /** Answers `req` exactly once (FORGET, BATCH_FORGET and INTERRUPT: never), or throws. */
  readonly handle: (c: OpContext, req: Request) => void;
}

const PAGE_SIZE = 4096;
/** Filesystems allowed under a passthrough file: the backing files sit on a plain filesystem. */
const PASSTHROUGH_STACK_DEPTH = 1;

/**
 * Kernel features to act as if missing, from SYNTHVHD_KERNEL_WITHOUT (a comma list; `passthrough`
 * here): the tests' way to run the fallbacks of kernels older than this machine's.
 */
function withoutFeatures(): bigint {
  return (process.env['SYNTHVHD_KERNEL_WITHOUT'] ?? '').split(',').includes('passthrough') ? Init.PASSTHROUGH : 0n;
}

function init(c: OpContext, req: Request): void {
  const k = decodeInit(req.body);
  if (k.major !== FUSE_KERNEL_VERSION) {
    c.o.log(`/dev/fuse: the kernel speaks FUSE ${k.major}.${k.minor}, not ${FUSE_KERNEL_VERSION}.x`);
    return c.out.status(req, E.EPROTO);
  }
  // DO_READDIRPLUS without READDIRPLUS_AUTO: every READDIR of a folder is a READDIRPLUS, also
  // past its first request (AUTO asks plain READDIRs there until a lookup advises otherwise).
  const want = Init.ASYNC_READ | Init.DO_READDIRPLUS | Init.PARALLEL_DIROPS | Init.MAX_PAGES | Init.INIT_EXT | Init.PASSTHROUGH;
  const flags = k.flags & want & ~withoutFeatures();
  const passthrough = (c.passthrough.enabled = (flags & Init.PASSTHROUGH) !== 0n);
  if (!passthrough) c.o.log(`the kernel has no FUSE passthrough (FUSE ${k.major}.${k.minor}; Linux 6.9 brought it): built disks are read through synthvhd`);
  c.out.send(initReply(req, {
    maxReadahead: c.o.maxReadahead,
    flags,
    maxBackground: c.o.maxBackground,
    congestionThreshold: c.o.congestionThreshold,
    maxWrite: MAX_WRITE,
    maxPages: c.o.maxRead / PAGE_SIZE,
    maxStackDepth: passthrough ? PASSTHROUGH_STACK_DEPTH : 0,
  }));
  c.initialized();
}

/** How long the kernel may keep `attr`: none for attributes that differ by caller (docs/overlays.md §3). */
function attrSecondsOf(c: OpContext, attr: Attr): number {
  if (attr.uncached) return 0;
  c.given.given(attr.ino);
  return c.o.attrSeconds;
}

function lookup(c: OpContext, req: Request): void {
  const found = c.fs.lookup(req.nodeid, decodeName(req.body));
  const answer = (attr: Attr | undefined): void => {
    c.out.send(attr ? entryReply(req, attr, c.o.entrySeconds, attrSecondsOf(c, attr)) : negativeEntryReply(req, c.o.entrySeconds));
  };
  if (found instanceof Promise) c.later(req, () => found, answer);
  else answer(found);
}

function getattr(c: OpContext, req: Request): void {
  const attr = c.fs.getattr(req.nodeid, decodeGetattrFh(req.body));
  if (attr) c.out.send(attrReply(req, attr, attrSecondsOf(c, attr)));
  else c.out.status(req, E.ENOENT);
}

function open(c: OpContext, req: Request): void {
  const ino = req.nodeid;
  c.later(req, () => c.fs.open(ino, decodeOpenFlags(req.body), req.uid), (h) => {
    // A writer's handle stays out of the inode's page cache, which holds the pristine bytes for
    // everyone else: its own view through passthrough, else direct I/O (docs/overlays.md §4).
    const io = h.direct ? c.passthrough.writerOpened(ino, h) : c.passthrough.opened(ino, h);
    if (io === REFUSED) return refuseWriter(c, req, h.fh);
    const passthrough = io.backingId > 0;
    // Before the reply: the kernel can send a READ of this handle only after it has the reply.
    if (h.contents) c.out.send(storeNotification(ino, h.contents));
    else if ((!passthrough || io.throughServer) && h.share) c.workers.publish(h.fh, h.share());
    c.out.send(openReply(req, h.fh, openFlags(h.direct === true, passthrough, io.throughServer), io.backingId));
  });
}

/** KEEP_CACHE for readers: a file's bytes never change under one inode number (a changed file gets a new one). */
function openFlags(direct: boolean, passthrough: boolean, throughServer: boolean): number {
  if (passthrough) return throughServer ? FOPEN_PASSTHROUGH | FOPEN_DIRECT_IO : FOPEN_PASSTHROUGH;
  return direct ? FOPEN_DIRECT_IO : FOPEN_KEEP_CACHE;
}

/**
 * A writer of an inode the kernel reads from another backing file (the disk as served, or
 * another user's view): it would refuse the writer's handle itself (one backing file per inode,
 * fs/fuse/iomode.c), so EBUSY until those handles close.
 */
function refuseWriter(c: OpContext, req: Request, fh: number): void {
  c.fs.release(fh);
  c.o.log(`/dev/fuse: inode ${req.nodeid} is read through kernel passthrough: an open for writing fails with EBUSY until its handles close (docs/overlays.md §4)`);
  c.out.status(req, E.EBUSY);
}

/** The READs a request worker could not answer from memory or the page cache. */
function read(c: OpContext, req: Request): void {
  // The fields one by one: no object per READ.
  const fh = readInFh(req.body, 0);
  const offset = readInOffset(req.body, 0);
  const size = readInSize(req.body, 0);
  const data = c.buffers.take(size);
  c.later(req, () => c.fs.read(fh, offset, size, data.subarray(0, size)), (n) => {
    writeOutHeader(c.buffers.header, req, 0, n);
    c.out.send([c.buffers.header, data.subarray(0, n)]);
    c.buffers.give(data);
  });
}

/** A write through a handle opened for writing (its overlay; docs/overlays.md). */
function write(c: OpContext, req: Request): void {
  const { fh, offset, data } = decodeWrite(req.body);
  const into = c.fs.write?.bind(c.fs);
  if (!into) return c.out.status(req, E.EROFS);
  c.later(req, () => into(fh, offset, data), (n) => c.out.send(writeReply(req, n)));
}

function setattr(c: OpContext, req: Request): void {
  const set = c.fs.setattr?.bind(c.fs);
  if (!set) return c.out.status(req, E.EROFS);
  const change = decodeSetattr(req.body);
  c.later(req, () => set(req.nodeid, change), (attr) => c.out.send(attrReply(req, attr, attrSecondsOf(c, attr))));
}

function release(c: OpContext, req: Request): void {
  releaseHandle(c, decodeFh(req.body));
  c.out.status(req, 0);
}

/**
 * What a RELEASE does but answer it: a request worker answers those of the handles it opened
 * (`told`: it has forgotten the handle already).
 */
export function releaseHandle(c: OpContext, fh: number, told = false): void {
  if (!told) c.workers.unpublish(fh);
  c.fs.release(fh);
  c.passthrough.released(fh);
}

function opendir(c: OpContext, req: Request): void {
  const listed = c.fs.list(req.nodeid);
  const answer = (list: readonly Dirent[] | undefined): void => {
    if (!list) return c.out.status(req, E.ENOTDIR);
    // The kernel keeps the listing (docs/fuse-protocol.md §5, OPENDIR); a rescan that changes the
    // folder drops it (Notifier.invalidateDirectory).
    const dir = { ino: req.nodeid, list };
    const fh = c.dirs.opened(dir);
    if (answerableByWorker(c, list)) c.workers.publishListing(fh, shareListing(plusOf(c, dir)));
    c.out.send(openReply(req, fh, FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE));
  };
  if (listed instanceof Promise) c.later(req, () => listed, answer);
  else answer(listed);
}

function readdir(c: OpContext, req: Request): void {
  const { fh, offset, size } = decodeRead(req.body);
  const dir = c.dirs.get(fh);
  if (dir) c.out.send(direntsReply(req, dir.list, offset, size));
  else c.out.status(req, E.EBADF);
}

/**
 * An entry's attributes for READDIRPLUS: its own, or its lookup's; none for `.` and `..`, a name
 * that fails (its own LOOKUP then says why), or one whose lookup is answered later (the kernel
 * looks those up).
 */
function entryOf(c: OpContext, dir: number, e: Dirent): Attr | undefined {
  if (e.name === '.' || e.name === '..') return undefined;
  if (e.attr) return e.attr;
  try {
    const attr = c.fs.lookup(dir, e.name);
    return attr instanceof Promise ? undefined : attr;
  } catch (err) {
    if (!(err instanceof FuseError)) c.o.log(`/dev/fuse: READDIRPLUS of ${e.name} failed: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  }
}

function readdirplus(c: OpContext, req: Request): void {
  const { fh, offset, size } = decodeRead(req.body);
  const dir = c.dirs.get(fh);
  if (!dir) return c.out.status(req, E.EBADF);
  const plus = plusOf(c, dir);
  const held = c.given.heldTest();
  // An entry whose attributes differ by caller goes without them (the kernel looks it up); one that
  // carries its attributes and goes with them is a lookup the filesystem counts.
  const uncached = c.fs.uncached?.bind(c.fs);
  const given = c.fs.given?.bind(c.fs);
  const withoutAttrs = (ino: number): boolean => {
    if (held(ino) || (uncached !== undefined && uncached(ino))) return true;
    const e = given && c.dirs.entry(dir, ino);
    if (e?.attr) given!(dir.ino, e);
    return false;
  };
  c.out.send(direntsPlusReply(req, plus, offset, size, uncached || given ? withoutAttrs : held));
}

/** A snapshot's READDIRPLUS entries, encoded once. */
function plusOf(c: OpContext, dir: OpenDir): DirentsPlus {
  return c.dirs.plusOf(dir, (e) => entryOf(c, dir.ino, e), c.o.entrySeconds, c.o.attrSeconds);
}

/**
 * Lets the first request worker answer the next OPENDIR of folder `ino` with `list`, read ahead,
 * and then its READDIRPLUS (docs/fuse-protocol.md §6); false when it cannot.
 */
export function offerListing(c: OpContext, ino: number, list: readonly Dirent[]): boolean {
  if (!answerableByWorker(c, list)) return false;
  const dir = { ino, list };
  if (!c.workers.offerListing(ino, shareListing(plusOf(c, dir)))) return false;
  c.dirs.offer(dir);
  return true;
}

/** Takes the offer of folder `ino` back: false when the worker answered its OPENDIR already. */
export function withdrawListing(c: OpContext, ino: number): boolean {
  if (!c.workers.withdrawListing(ino)) return false;
  c.dirs.withdraw(ino);
  return true;
}

/**
 * Whether the first request worker can answer a listing's READDIRPLUS: every entry but `.` and
 * `..` carries its attributes, the same for every caller (docs/fuse-protocol.md §6).
 */
function answerableByWorker(c: OpContext, list: readonly Dirent[]): boolean {
  const uncached = c.fs.uncached?.bind(c.fs);
  return c.fs.given !== undefined && list.every((e) => e.name === '.' || e.name === '..' || (e.attr !== undefined && !uncached?.(e.ino)));
}

/** The first request worker answered a READDIRPLUS of folder handle `fh` with entries [from, to), attributes and all: each is a lookup, as readdirplus() counts them. */
export function givenByWorker(c: OpContext, fh: number, from: number, to: number): void {
  const dir = c.dirs.get(fh);
  if (!dir) return;
  for (let i = from; i < to && i < dir.list.length; i++) {
    const e = dir.list[i]!;
    if (e.name === '.' || e.name === '..') continue;
    c.given.given(e.ino);
    c.fs.given!(dir.ino, e);
  }
}

function releasedir(c: OpContext, req: Request): void {
  const fh = decodeFh(req.body);
  c.workers.unpublishListing(fh);
  c.dirs.released(fh);
  c.out.status(req, 0);
}

function lseek(c: OpContext, req: Request): void {
  const { fh, offset, whence } = decodeLseek(req.body);
  const seek = c.fs.lseek?.bind(c.fs);
  if (!seek) return c.out.status(req, E.ENOSYS);
  c.later(req, () => seek(fh, offset, whence), (at) => c.out.send(lseekReply(req, at)));
}

/**
 * No value is ENODATA; a buffer too small for it ERANGE (getxattr(2)). A filesystem without
 * extended attributes: ENOSYS, after which the kernel asks no more (ls -l asks for every file).
 */
function getxattr(c: OpContext, req: Request): void {
  if (!c.fs.getxattr) return c.out.status(req, E.ENOSYS);
  const { size, name } = decodeGetxattr(req.body);
  const value = c.fs.getxattr(req.nodeid, name);
  if (!value) return c.out.status(req, E.ENODATA);
  if (size !== 0 && value.length > size) return c.out.status(req, E.ERANGE);
  c.out.send(getxattrReply(req, value, size));
}

function readlink(c: OpContext, req: Request): void {
  const read = c.fs.readlink?.bind(c.fs);
  if (!read) return c.out.status(req, E.EINVAL);
  c.later(req, () => read(req.nodeid), (target) => c.out.send(readlinkReply(req, target)));
}

/** No reply. Node ids are inode numbers; the filesystem hears of them for the nodes it made on demand. */
function forget(c: OpContext, req: Request): void {
  for (const { nodeid, nlookup } of decodeForgotten(req)) {
    c.given.forget(nodeid);
    c.fs.forget?.(nodeid, nlookup);
  }
}

const handler = (struct: string, inSize: number, handle: OpHandler['handle']): OpHandler => ({ struct, inSize, handle });
const answer = (errno: number): OpHandler => handler('', 0, (c, req) => c.out.status(req, errno));

/**
 * ENOSYS tells the kernel never to ask again (access, xattrs, statx...); for FLUSH and FSYNC
 * it then answers success itself (fs/fuse/file.c fc->no_flush, no_fsync): an overlay is thrown away anyway.
 */
const UNKNOWN_OP = answer(E.ENOSYS);

const OP_HANDLERS: ReadonlyMap<number, OpHandler> = new Map([
  [Op.INIT, handler('fuse_init_in', INIT_IN_SIZE, init)],
  [Op.LOOKUP, handler('name', 0, lookup)],
  [Op.GETATTR, handler('fuse_getattr_in', GETATTR_IN_SIZE, getattr)],
  [Op.OPEN, handler('fuse_open_in', OPEN_IN_SIZE, open)],
  [Op.READ, handler('fuse_read_in', READ_IN_SIZE, read)],
  [Op.RELEASE, handler('fuse_release_in', RELEASE_IN_SIZE, release)],
  [Op.WRITE, handler('fuse_write_in', WRITE_IN_SIZE, write)],
  [Op.SETATTR, handler('fuse_setattr_in', SETATTR_IN_SIZE, setattr)],
  // Preallocating or punching a view: EOPNOTSUPP, which callers (qemu) handle and the kernel then answers itself.
  [Op.FALLOCATE, answer(E.EOPNOTSUPP)],
  [Op.OPENDIR, handler('fuse_open_in', 0, opendir)],
  [Op.READDIR, handler('fuse_read_in', READ_IN_SIZE, readdir)],
  [Op.READDIRPLUS, handler('fuse_read_in', READ_IN_SIZE, readdirplus)],
  [Op.RELEASEDIR, handler('fuse_release_in', RELEASE_IN_SIZE, releasedir)],
  [Op.STATFS, handler('', 0, (c, req) => c.out.send(statfsReply(req, c.fs.statfs())))],
  [Op.LSEEK, handler('fuse_lseek_in', LSEEK_IN_SIZE, lseek)],
  [Op.READLINK, handler('', 0, readlink)],
  [Op.GETXATTR, handler('fuse_getxattr_in', GETXATTR_IN_SIZE, getxattr)],
  [Op.FORGET, handler('', 0, forget)],
  [Op.BATCH_FORGET, handler('fuse_batch_forget_in', BATCH_FORGET_IN_SIZE, forget)],
  // No reply: reads are not cancelled.
  [Op.INTERRUPT, handler('', 0, () => undefined)],
  [Op.DESTROY, answer(0)],
  ...[...WRITE_OPS].map((op): [number, OpHandler] => [op, answer(E.EROFS)]),
]);

/** The handler of `req` (ENOSYS for an opcode not in the table); throws when its body is shorter than the handler's struct. */
export function handlerOf(req: Request): OpHandler {
  const h = OP_HANDLERS.get(req.opcode) ?? UNKNOWN_OP;
  if (req.body.length < h.inSize) throw new Error(`${h.struct}: ${req.body.length} bytes, need ${h.inSize}`);
  return h;
}
