// A FUSE session spoken directly over /dev/fuse: mount(2), worker threads that read requests and
// answer cached reads themselves, the main thread for everything else, and kernel passthrough
// (Linux 6.9) for files that are one whole backing file. No libfuse and no helper process:
// requests may be 1 MiB (FUSE_MAX_PAGES), and a passthrough file's reads never reach userspace.
// docs/fuse-protocol.md describes the subset of the protocol spoken here.
import { closeSync, constants, openSync, write, writeSync, writevSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { BroadcastChannel, MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import { alignedBuffer } from '../sys/aligned-buffer.js';
import { ioctl, lastErrno, mount as mountRaw } from '../sys/libc.js';
import type { SharedLayout } from '../io/shared-layout.js';
import {
  answerTo, type Attr, attrReply, BACKING_MAP_SIZE, decodeFh, decodeGetattrFh, decodeInit, decodeLseek, decodeName, decodeOpenFlags,
  decodeForgotten, decodeRead, decodeRequest, type Dirent, type DirentsPlus, direntsPlusReply, direntsReply, encodeDirentsPlus, entryReply, FOPEN_CACHE_DIR, FOPEN_KEEP_CACHE, FOPEN_PASSTHROUGH, FUSE_KERNEL_VERSION, Init,
  initReply, invalEntryNotification, invalInodeNotification, lseekReply, negativeEntryReply, NO_REPLY_OPS, Op, OUT_HEADER_SIZE,
  openReply, type Request, type Statfs, statfsReply, statusReply, WRITE_OPS, writeOutHeader,
} from './protocol.js';
import type { EndMessage, HandleMessage, RequestMessage, WorkerData } from './request-worker.js';
import { Control, newControl } from './worker-control.js';

const E = osConstants.errno;

/** A request refused with an errno. */
export class FuseError extends Error {
  override name = 'FuseError';
  constructor(readonly errno: number, message = `errno ${errno}`) {
    super(message);
  }
}

export interface OpenHandle {
  readonly fh: number;
  /**
   * A descriptor whose bytes are exactly the virtual file's, from offset 0: the kernel may then
   * read it itself (passthrough) and this handle's reads never reach read().
   */
  readonly wholeFileFd?: number;
  /** The file's layout in shared memory: the request workers answer its cached reads themselves. */
  readonly shared?: SharedLayout;
}

/** A read-only filesystem by inode number. Lookups are answered on the main thread, at once. */
export interface FuseFs {
  lookup(parent: number, name: string): Attr | undefined;
  /** `fh` is set when the kernel asks through an open handle (fstat). */
  getattr(ino: number, fh: number | undefined): Attr | undefined;
  /** Entries of a directory, "." and ".." included; undefined when it is not a directory. */
  list(ino: number): readonly Dirent[] | undefined;
  /** Rejects with FuseError. */
  open(ino: number, flags: number): Promise<OpenHandle>;
  /** Fills `into` from `offset`; resolves the byte count (short only at end of file). */
  read(fh: number, offset: number, size: number, into: Buffer): Promise<number>;
  release(fh: number): void;
  statfs(): Statfs;
  /** lseek(2) SEEK_DATA / SEEK_HOLE on an open handle; rejects with FuseError (ENXIO past the data). */
  lseek?(fh: number, offset: number, whence: number): Promise<number>;
}

export interface SessionOptions {
  readonly allowOther: boolean;
  /** Largest read request, in bytes (a multiple of the page size, at most 1 MiB). */
  readonly maxRead: number;
  /** fuse_init_out max_readahead: the kernel keeps the smaller of this and the mount's readahead. */
  readonly maxReadahead: number;
  /** Threads that read /dev/fuse (src/fuse/request-worker.ts). */
  readonly workers: number;
  readonly maxBackground: number;
  readonly congestionThreshold: number;
  readonly entrySeconds: number;
  readonly attrSeconds: number;
  readonly log: (line: string) => void;
}

/** mount(2) flags, <sys/mount.h>: nothing on the mount can be written, run or be a device. */
const MS_RDONLY = 1;
const MS_NOSUID = 2;
const MS_NODEV = 4;
/** Octal S_IFDIR, for the rootmode= mount option (fs/fuse/inode.c parses it in octal). */
const ROOT_MODE = '40000';
const PAGE_SIZE = 4096;
/** <linux/fuse.h> FUSE_DEV_IOC_BACKING_OPEN = _IOW(229, 1, struct fuse_backing_map). */
const FUSE_DEV_IOC_BACKING_OPEN = 0x4010e501;
/** <linux/fuse.h> FUSE_DEV_IOC_BACKING_CLOSE = _IOW(229, 2, uint32_t). */
const FUSE_DEV_IOC_BACKING_CLOSE = 0x4004e502;
/** Filesystems allowed under a passthrough file: the backing files sit on a plain filesystem. */
const PASSTHROUGH_STACK_DEPTH = 1;
/** A READDIRPLUS leaves out attributes the kernel was given less than this part of their validity ago. */
const HELD_FRACTION = 0.9;
/** Pause before starting a request worker again after it failed, so a persistent failure cannot spin. */
const RESTART_MS = 200;
/** Reply buffers kept for reuse: as many as the readahead requests usually in flight. */
const SPARE_BUFFERS = 16;
/** Our max_write: the kernel's floor (fs/fuse/inode.c), since nothing is ever written. */
const MAX_WRITE = PAGE_SIZE;

/** How a handle reads: through read() (the kernel caches pages) or by the kernel from a backing file. */
interface HandleMode {
  readonly ino: number;
  readonly passthrough: boolean;
}

/** Per inode: the kernel refuses (EIO) an open whose mode differs from the inode's open handles. */
interface InodeIo {
  cached: number;
  passthrough: number;
  backingId: number;
}

export interface Session {
  /** Resolves when the kernel's INIT is answered: a request worker is up and reading. */
  readonly initialized: Promise<void>;
  /** Resolves when the kernel has ended the connection: unmounted, or aborted through fusectl. */
  readonly ended: Promise<void>;
  /** Closes /dev/fuse once the connection has ended. */
  close(): void;
  /** Drops the kernel's cached attributes of `ino`, not its pages (FUSE_NOTIFY_INVAL_INODE). */
  invalidateAttributes(ino: number): void;
  /** Drops the kernel's cached attributes and listing of directory `ino` (FUSE_NOTIFY_INVAL_INODE with its pages). */
  invalidateDirectory(ino: number): void;
  /** Drops the kernel's cached lookup of `name` in `parent`, negative ones included (FUSE_NOTIFY_INVAL_ENTRY). */
  invalidateEntry(parent: number, name: string): void;
}

/**
 * Kernel features to act as if missing, from SYNTHVHD_KERNEL_WITHOUT (a comma list; `passthrough`
 * here): the tests' way to run the fallbacks of kernels older than this machine's.
 */
function withoutFeatures(): bigint {
  return (process.env['SYNTHVHD_KERNEL_WITHOUT'] ?? '').split(',').includes('passthrough') ? Init.PASSTHROUGH : 0n;
}

function errnoOf(e: unknown): number {
  if (e instanceof FuseError) return e.errno;
  return E.EIO;
}

export class MountSyscallError extends Error {
  override name = 'MountSyscallError';
}

/** How a request worker ended: these two mean the connection is gone, anything else is a failure. */
const CONNECTION_GONE = new Set(['ENODEV', 'ECONNABORTED']);

class Connection {
  private readonly modes = new Map<number, HandleMode>();
  private readonly inodes = new Map<number, InodeIo>();
  /** Open directories: their inode and the snapshot of their entries. */
  private readonly dirs = new Map<number, { readonly ino: number; readonly list: readonly Dirent[] }>();
  /**
   * READDIRPLUS entries per snapshot, encoded once: an entry's attributes do not change while
   * its folder's snapshot is the same (a changed file is a new node in a new snapshot). The
   * second `ls -lR` of 10 000 backups took 0.63 s re-encoding them, 0.19 s with plain READDIRs.
   */
  private readonly plus = new WeakMap<readonly Dirent[], DirentsPlus>();
  /**
   * When the kernel was last given each inode's attributes (LOOKUP, GETATTR, READDIRPLUS), until
   * it forgets the inode (FORGET: evicted) or they are invalidated. A READDIRPLUS entry of an
   * inode given less than an attribute validity ago goes without them: the second ls -lR of
   * 10 000 backups cost 0.35 s with all 20 000 refreshed, against 0.29 s with plain READDIRs.
   * Wrong only ever costs a LOOKUP (node id 0 means "look it up when needed").
   */
  private readonly given = new Map<number, number>();
  private lastDir = 0;
  /** Reply data buffers for reads, reused: a 1 MiB allocation per request would dominate. */
  private readonly spare: Buffer[] = [];
  /** The header of a read reply, reused: a reply is written synchronously as soon as it is filled. */
  private readonly readHeader = Buffer.alloc(OUT_HEADER_SIZE);
  /** Each request worker's port for open/release messages. */
  private readonly ports = new Set<MessagePort>();
  /** Layouts the workers were given, by handle, so that a restarted worker gets them too. */
  private readonly layouts = new Map<number, SharedLayout>();
  /** Shared with the request workers (worker-control.ts). */
  private readonly control = newControl();
  private passthrough = false;
  private passthroughFailed = false;
  /** Set when the kernel has ended the connection: nothing more is written to it. */
  private gone = false;
  /** Resolves when the kernel has ended the connection. */
  readonly ended: Promise<void>;
  readonly initialized: Promise<void>;
  private initDone!: () => void;

  constructor(private readonly dev: number, private readonly fs: FuseFs, private readonly o: SessionOptions) {
    let running = 0;
    let done!: () => void;
    this.ended = new Promise<void>((r) => (done = r));
    this.initialized = new Promise<void>((r) => (this.initDone = r));
    const name = `synthvhd-fuse-${process.pid}-${dev}-${Date.now()}`;
    const requests = new BroadcastChannel(name);
    requests.onmessage = (e) => {
      const m = (e as { data: RequestMessage }).data;
      this.receive(Buffer.from(m.buffer, m.byteOffset, m.byteLength));
    };
    void this.ended.then(() => requests.close());
    const control = this.control;
    const start = (role: WorkerData['role']): void => {
      running++;
      const { port1, port2 } = new MessageChannel();
      const data: WorkerData = { dev, handles: port2, maxRead: o.maxRead, requests: name, role, control };
      const worker = new Worker(new URL('./request-worker.js', import.meta.url), { workerData: data, transferList: [port2] });
      for (const [fh, layout] of this.layouts) port1.postMessage({ open: fh, layout } satisfies HandleMessage);
      this.ports.add(port1);
      let end = 'exited';
      worker.on('message', (m: EndMessage) => (end = m.ended));
      worker.on('error', (e) => (end = e.message));
      worker.on('exit', () => {
        running--;
        this.ports.delete(port1);
        port1.close();
        if (CONNECTION_GONE.has(end)) this.gone = true;
        if (!this.gone) {
          o.log(`/dev/fuse: a request worker stopped (${end}); starting another`);
          setTimeout(() => start(role), RESTART_MS);
        } else if (running === 0) done();
      });
    };
    for (let i = 0; i < o.workers; i++) start(i === 0 ? 'first' : 'helper');
  }

  private publish(fh: number, layout: SharedLayout): void {
    this.layouts.set(fh, layout);
    for (const p of this.ports) p.postMessage({ open: fh, layout } satisfies HandleMessage);
    Atomics.add(this.control, Control.HANDLES, 1);
  }

  private unpublish(fh: number): void {
    if (!this.layouts.delete(fh)) return;
    for (const p of this.ports) p.postMessage({ release: fh } satisfies HandleMessage);
    Atomics.add(this.control, Control.HANDLES, 1);
  }

  /** Answers one request, exactly once (none for FORGET, BATCH_FORGET and INTERRUPT). */
  private receive(frame: Buffer): void {
    let req: Request;
    try {
      req = decodeRequest(frame, frame.length);
    } catch (e) {
      this.o.log(`/dev/fuse: bad request: ${(e as Error).message}`);
      const id = answerTo(frame, frame.length);
      if (id && !NO_REPLY_OPS.has(id.opcode)) this.status(id, E.EIO);
      return;
    }
    try {
      this.dispatch(req);
    } catch (e) {
      this.fail(req, e);
    }
  }

  /** The one answer to a request whose handler failed: its FuseError's errno, else EIO with a log line. */
  private fail(req: Request, e: unknown): void {
    if (!(e instanceof FuseError)) this.o.log(`/dev/fuse: request ${req.opcode} failed: ${e instanceof Error ? e.message : String(e)}`);
    if (!NO_REPLY_OPS.has(req.opcode)) this.status(req, errnoOf(e));
  }

  /** Answers when `work` settles: `reply` builds the answer, and a failure of either is the errno. */
  private later<T>(req: Request, work: () => Promise<T>, reply: (value: T) => void): void {
    work().then(
      (v) => {
        try {
          reply(v);
        } catch (e) {
          this.fail(req, e);
        }
      },
      (e: unknown) => this.fail(req, e),
    );
  }

  /** Writes a notification, off the main thread: the kernel may wait for page locks that a reply from here would release. */
  private notify(out: Buffer): void {
    if (this.gone) return;
    write(this.dev, out, (e) => {
      // ENOENT: the kernel had nothing cached for it; ENODEV: unmounted meanwhile.
      if (e && e.code !== 'ENOENT' && e.code !== 'ENODEV') this.o.log(`/dev/fuse: notification failed (${e.code ?? e.message})`);
    });
  }

  invalidateAttributes(ino: number): void {
    this.given.delete(ino);
    this.notify(invalInodeNotification(ino));
  }

  invalidateDirectory(ino: number): void {
    this.given.delete(ino);
    this.notify(invalInodeNotification(ino, true));
  }

  invalidateEntry(parent: number, name: string): void {
    this.notify(invalEntryNotification(parent, name));
  }

  /** Writes one reply; a reply in several buffers goes out in one writev (the kernel takes a reply in one write). */
  private send(out: Buffer | Buffer[]): void {
    if (this.gone) return;
    try {
      if (Array.isArray(out)) writevSync(this.dev, out);
      else writeSync(this.dev, out);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // ENOENT: the request was interrupted and is gone; ENODEV: unmounted meanwhile.
      if (code === 'ENODEV') this.gone = true;
      else if (code !== 'ENOENT') this.o.log(`/dev/fuse: reply failed (${code ?? (e as Error).message})`);
    }
  }

  /** A reply without a body: success (0) or an errno. */
  private status(req: Request, errno: number): void {
    this.send(statusReply(req, errno));
  }

  private dispatch(req: Request): void {
    switch (req.opcode) {
      case Op.INIT: return this.init(req);
      case Op.LOOKUP: {
        const attr = this.fs.lookup(req.nodeid, decodeName(req.body));
        if (attr) this.given.set(attr.ino, Date.now());
        return this.send(attr ? entryReply(req, attr, this.o.entrySeconds, this.o.attrSeconds) : negativeEntryReply(req, this.o.entrySeconds));
      }
      case Op.GETATTR: {
        const attr = this.fs.getattr(req.nodeid, decodeGetattrFh(req.body));
        if (attr) this.given.set(req.nodeid, Date.now());
        return attr ? this.send(attrReply(req, attr, this.o.attrSeconds)) : this.status(req, E.ENOENT);
      }
      case Op.OPEN: return this.open(req);
      case Op.READ: return this.read(req);
      case Op.RELEASE: return this.release(req);
      case Op.OPENDIR: {
        const list = this.fs.list(req.nodeid);
        if (!list) return this.status(req, E.ENOTDIR);
        // A snapshot per open directory, so a rescan between two READDIRs cannot skip or repeat names.
        do this.lastDir = this.lastDir >= Number.MAX_SAFE_INTEGER ? 1 : this.lastDir + 1;
        while (this.dirs.has(this.lastDir));
        this.dirs.set(this.lastDir, { ino: req.nodeid, list });
        // The kernel keeps the listing (an `ls -lR` of 10 000 backups again: 0.27-0.31 s -> 0.21-0.24 s);
        // a rescan that changes the folder drops it (invalidateDirectory).
        return this.send(openReply(req, this.lastDir, FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE));
      }
      case Op.READDIR: {
        const { fh, offset, size } = decodeRead(req.body);
        const dir = this.dirs.get(fh);
        return dir ? this.send(direntsReply(req, dir.list, offset, size)) : this.status(req, E.EBADF);
      }
      case Op.READDIRPLUS: {
        const { fh, offset, size } = decodeRead(req.body);
        const dir = this.dirs.get(fh);
        if (!dir) return this.status(req, E.EBADF);
        let plus = this.plus.get(dir.list);
        if (!plus) this.plus.set(dir.list, (plus = encodeDirentsPlus(dir.list, (e) => this.entryOf(dir.ino, e), this.o.entrySeconds, this.o.attrSeconds)));
        const now = Date.now();
        const fresh = now - this.o.attrSeconds * 1000 * HELD_FRACTION;
        return this.send(direntsPlusReply(req, plus, offset, size, (ino) => {
          if ((this.given.get(ino) ?? 0) > fresh) return true;
          this.given.set(ino, now);
          return false;
        }));
      }
      case Op.RELEASEDIR:
        this.dirs.delete(decodeFh(req.body));
        return this.status(req, 0);
      case Op.STATFS: return this.send(statfsReply(req, this.fs.statfs()));
      case Op.LSEEK: {
        const { fh, offset, whence } = decodeLseek(req.body);
        const seek = this.fs.lseek?.bind(this.fs);
        if (!seek) return this.status(req, E.ENOSYS);
        return this.later(req, () => seek(fh, offset, whence), (at) => this.send(lseekReply(req, at)));
      }
      case Op.FORGET: case Op.BATCH_FORGET:
        // No reply. Node ids are inode numbers, so nothing else to forget.
        for (const ino of decodeForgotten(req)) this.given.delete(ino);
        return;
      case Op.INTERRUPT:
        return; // no reply: reads are not cancelled
      case Op.DESTROY: return this.status(req, 0);
      default:
        // ENOSYS tells the kernel never to ask again (flush, fsync, access, xattrs, statx...).
        return this.status(req, WRITE_OPS.has(req.opcode) ? E.EROFS : E.ENOSYS);
    }
  }

  /** An entry's lookup for READDIRPLUS; none for `.` and `..` or a name that fails (its own LOOKUP then says why). */
  private entryOf(dir: number, e: Dirent): Attr | undefined {
    if (e.name === '.' || e.name === '..') return undefined;
    try {
      return this.fs.lookup(dir, e.name);
    } catch (err) {
      if (!(err instanceof FuseError)) this.o.log(`/dev/fuse: READDIRPLUS of ${e.name} failed: ${err instanceof Error ? err.message : String(err)}`);
      return undefined;
    }
  }

  private init(req: Request): void {
    const k = decodeInit(req.body);
    if (k.major !== FUSE_KERNEL_VERSION) {
      this.o.log(`/dev/fuse: the kernel speaks FUSE ${k.major}.${k.minor}, not ${FUSE_KERNEL_VERSION}.x`);
      return this.status(req, E.EPROTO);
    }
    // DO_READDIRPLUS without READDIRPLUS_AUTO: every READDIR of a folder is a READDIRPLUS, also
    // past its first request (AUTO asks plain READDIRs there until a lookup advises otherwise).
    const want = Init.ASYNC_READ | Init.DO_READDIRPLUS | Init.PARALLEL_DIROPS | Init.MAX_PAGES | Init.INIT_EXT | Init.PASSTHROUGH;
    const flags = k.flags & want & ~withoutFeatures();
    this.passthrough = (flags & Init.PASSTHROUGH) !== 0n;
    if (!this.passthrough) this.o.log(`the kernel has no FUSE passthrough (FUSE ${k.major}.${k.minor}; Linux 6.9 brought it): built disks are read through synthvhd`);
    this.send(initReply(req, {
      maxReadahead: this.o.maxReadahead,
      flags,
      maxBackground: this.o.maxBackground,
      congestionThreshold: this.o.congestionThreshold,
      maxWrite: MAX_WRITE,
      maxPages: this.o.maxRead / PAGE_SIZE,
      maxStackDepth: this.passthrough ? PASSTHROUGH_STACK_DEPTH : 0,
    }));
    this.initDone();
  }

  private open(req: Request): void {
    const ino = req.nodeid;
    const flags = decodeOpenFlags(req.body);
    this.later(req, () => this.fs.open(ino, flags), (h) => {
        const io = this.inodes.get(ino) ?? { cached: 0, passthrough: 0, backingId: 0 };
        const backingId = this.backingFor(io, h);
        const passthrough = backingId > 0;
        if (passthrough) io.passthrough++;
        else io.cached++;
        this.inodes.set(ino, io);
        this.modes.set(h.fh, { ino, passthrough });
        // Before the reply: the kernel can send a READ of this handle only after it has the reply.
        if (!passthrough && h.shared) this.publish(h.fh, h.shared);
        // KEEP_CACHE: a file's bytes never change under one inode number (a changed file gets a new one).
        this.send(openReply(req, h.fh, passthrough ? FOPEN_PASSTHROUGH : FOPEN_KEEP_CACHE, backingId));
    });
  }

  /**
   * The backing id for a passthrough open, or 0 to serve this handle through read(). All
   * passthrough handles of an inode share one backing file, and none may coexist with a cached
   * handle (fs/fuse/iomode.c), so an inode already read through read() stays that way until closed.
   */
  private backingFor(io: InodeIo, h: OpenHandle): number {
    if (io.passthrough > 0) return io.backingId;
    if (!this.passthrough || h.wholeFileFd === undefined || io.cached > 0) return 0;
    const map = Buffer.alloc(BACKING_MAP_SIZE);
    map.writeInt32LE(h.wholeFileFd, 0);
    const id = ioctl(this.dev, FUSE_DEV_IOC_BACKING_OPEN, 'void *', map);
    if (id > 0) return (io.backingId = id);
    if (!this.passthroughFailed) {
      this.passthroughFailed = true;
      const err = lastErrno();
      this.o.log(`kernel passthrough refused (${err.code}: ${err.text}): built disks are read through synthvhd instead`);
    }
    return 0;
  }

  private read(req: Request): void {
    const { fh, offset, size } = decodeRead(req.body);
    // Page-aligned, so that the filesystem may read O_DIRECT straight into it.
    const data = size <= this.o.maxRead ? (this.spare.pop() ?? alignedBuffer(this.o.maxRead)) : alignedBuffer(size);
    this.later(req, () => this.fs.read(fh, offset, size, data.subarray(0, size)), (n) => {
      writeOutHeader(this.readHeader, req, 0, n);
      this.send([this.readHeader, data.subarray(0, n)]);
      if (data.length === this.o.maxRead && this.spare.length < SPARE_BUFFERS) this.spare.push(data);
    });
  }

  private release(req: Request): void {
    const fh = decodeFh(req.body);
    const mode = this.modes.get(fh);
    this.modes.delete(fh);
    this.unpublish(fh);
    this.fs.release(fh);
    if (mode) {
      const io = this.inodes.get(mode.ino)!;
      if (mode.passthrough) io.passthrough--;
      else io.cached--;
      if (io.passthrough === 0 && io.backingId > 0) {
        ioctl(this.dev, FUSE_DEV_IOC_BACKING_CLOSE, 'void *', Uint32Array.of(io.backingId));
        io.backingId = 0;
      }
      if (io.cached === 0 && io.passthrough === 0) this.inodes.delete(mode.ino);
    }
    this.status(req, 0);
  }
}

/**
 * Mounts `fs` at `mountpoint` (an absolute, empty folder) and serves it until the kernel ends
 * the connection. Needs CAP_SYS_ADMIN: mount(2) of a FUSE filesystem and passthrough do.
 */
export function mountSession(mountpoint: string, fs: FuseFs, o: SessionOptions): Session {
  const dev = openSync('/dev/fuse', constants.O_RDWR);
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  const data = `fd=${dev},rootmode=${ROOT_MODE},user_id=${uid},group_id=${gid},default_permissions${o.allowOther ? ',allow_other' : ''}`;
  if (mountRaw('synthvhd', mountpoint, 'fuse.synthvhd', MS_RDONLY | MS_NOSUID | MS_NODEV, data) !== 0) {
    const err = lastErrno();
    closeSync(dev);
    throw new MountSyscallError(err.code === 'EPERM' ? 'mounting needs root (CAP_SYS_ADMIN): run synthvhd serve as root' : `mount(2) failed: ${err.code} (${err.text})`);
  }
  const c = new Connection(dev, fs, o);
  return {
    initialized: c.initialized,
    ended: c.ended,
    close: () => void c.ended.then(() => closeSync(dev)),
    invalidateAttributes: (ino) => c.invalidateAttributes(ino),
    invalidateDirectory: (ino) => c.invalidateDirectory(ino),
    invalidateEntry: (parent, name) => c.invalidateEntry(parent, name),
  };
}
