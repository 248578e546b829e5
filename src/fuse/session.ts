// A FUSE session spoken directly over /dev/fuse: mount(2), a loop of requests answered from the
// Node main thread, and kernel passthrough (Linux 6.9) for files that are one whole backing file.
// No libfuse: requests may be 1 MiB (FUSE_MAX_PAGES), and a passthrough file's reads never reach
// userspace at all.
import { closeSync, constants, openSync, writeSync, writevSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { alignedBuffer } from '../io/aligned-buffer.js';
import { ioctl, lastErrno, mount as mountRaw } from '../io/libc.js';
import { pumpRequests } from './request-pump.js';
import {
  type Attr, attrReply, BACKING_MAP_SIZE, decodeFh, decodeGetattrFh, decodeInit, decodeName, decodeOpenFlags, decodeRead,
  decodeRequest, type Dirent, direntsReply, entryReply, statusReply, FOPEN_KEEP_CACHE, FOPEN_PASSTHROUGH, FUSE_KERNEL_VERSION,
  Init, initReply, Op, OUT_HEADER_SIZE, openReply, type Request, type Statfs, statfsReply, WRITE_OPS,
  writeOutHeader,
} from './protocol.js';

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
}

export interface SessionOptions {
  readonly allowOther: boolean;
  /** Largest read request, in bytes (a multiple of the page size, at most 1 MiB). */
  readonly maxRead: number;
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
  /** Resolves when the kernel has ended the connection: unmounted, or aborted through fusectl. */
  readonly ended: Promise<void>;
  /** Closes /dev/fuse once the connection has ended. */
  close(): void;
}

function errnoOf(e: unknown): number {
  if (e instanceof FuseError) return e.errno;
  return E.EIO;
}

export class MountSyscallError extends Error {
  override name = 'MountSyscallError';
}

class Connection {
  private readonly modes = new Map<number, HandleMode>();
  private readonly inodes = new Map<number, InodeIo>();
  private readonly dirs = new Map<number, readonly Dirent[]>();
  private lastDir = 0;
  /** Reply data buffers for reads, reused: a 1 MiB allocation per request would dominate. */
  private readonly spare: Buffer[] = [];
  /** The header of a read reply, reused: a reply is written synchronously as soon as it is filled. */
  private readonly readHeader = Buffer.alloc(OUT_HEADER_SIZE);
  private passthrough = false;
  private passthroughFailed = false;
  /** Resolves when the kernel has ended the connection. */
  readonly ended: Promise<void>;

  constructor(private readonly dev: number, private readonly fs: FuseFs, private readonly o: SessionOptions) {
    this.ended = pumpRequests(dev, (frame) => this.receive(frame), o.log).ended;
  }

  private receive(frame: Buffer): void {
    try {
      this.dispatch(decodeRequest(frame, frame.length));
    } catch (e) {
      this.o.log(`/dev/fuse: bad request: ${(e as Error).message}`);
    }
  }

  /** Writes one reply; a reply in several buffers goes out in one writev (the kernel takes a reply in one write). */
  private send(out: Buffer | Buffer[]): void {
    try {
      if (Array.isArray(out)) writevSync(this.dev, out);
      else writeSync(this.dev, out);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // ENOENT: the request was interrupted and is gone; ENODEV: unmounted meanwhile.
      if (code !== 'ENOENT' && code !== 'ENODEV') this.o.log(`/dev/fuse: reply failed (${code ?? (e as Error).message})`);
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
        return attr ? this.send(entryReply(req, attr, this.o.entrySeconds, this.o.attrSeconds)) : this.status(req, E.ENOENT);
      }
      case Op.GETATTR: {
        const attr = this.fs.getattr(req.nodeid, decodeGetattrFh(req.body));
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
        this.dirs.set(this.lastDir, list);
        return this.send(openReply(req, this.lastDir, 0));
      }
      case Op.READDIR: {
        const { fh, offset, size } = decodeRead(req.body);
        const list = this.dirs.get(fh);
        return list ? this.send(direntsReply(req, list, offset, size)) : this.status(req, E.EBADF);
      }
      case Op.RELEASEDIR:
        this.dirs.delete(decodeFh(req.body));
        return this.status(req, 0);
      case Op.STATFS: return this.send(statfsReply(req, this.fs.statfs()));
      case Op.FORGET: case Op.BATCH_FORGET: case Op.INTERRUPT:
        return; // no reply: node ids are inode numbers, nothing to forget; reads are not cancelled
      case Op.DESTROY: return this.status(req, 0);
      default:
        // ENOSYS tells the kernel never to ask again (flush, fsync, access, xattrs, statx...).
        return this.status(req, WRITE_OPS.has(req.opcode) ? E.EROFS : E.ENOSYS);
    }
  }

  private init(req: Request): void {
    const k = decodeInit(req.body);
    if (k.major !== FUSE_KERNEL_VERSION) {
      this.o.log(`/dev/fuse: the kernel speaks FUSE ${k.major}.${k.minor}, not ${FUSE_KERNEL_VERSION}.x`);
      return this.status(req, E.EPROTO);
    }
    const want = Init.ASYNC_READ | Init.PARALLEL_DIROPS | Init.MAX_PAGES | Init.INIT_EXT | Init.PASSTHROUGH;
    const flags = k.flags & want;
    this.passthrough = (flags & Init.PASSTHROUGH) !== 0n;
    if (!this.passthrough) this.o.log('the kernel offers no FUSE passthrough (Linux < 6.9): built disks are read through synthvhd');
    this.send(initReply(req, {
      maxReadahead: k.maxReadahead,
      flags,
      maxBackground: this.o.maxBackground,
      congestionThreshold: this.o.congestionThreshold,
      maxWrite: MAX_WRITE,
      maxPages: this.o.maxRead / PAGE_SIZE,
      maxStackDepth: this.passthrough ? PASSTHROUGH_STACK_DEPTH : 0,
    }));
  }

  private open(req: Request): void {
    const ino = req.nodeid;
    this.fs.open(ino, decodeOpenFlags(req.body)).then(
      (h) => {
        const io = this.inodes.get(ino) ?? { cached: 0, passthrough: 0, backingId: 0 };
        const backingId = this.backingFor(io, h);
        const passthrough = backingId > 0;
        if (passthrough) io.passthrough++;
        else io.cached++;
        this.inodes.set(ino, io);
        this.modes.set(h.fh, { ino, passthrough });
        // KEEP_CACHE: the files never change, so pages read once stay valid across opens.
        this.send(openReply(req, h.fh, passthrough ? FOPEN_PASSTHROUGH : FOPEN_KEEP_CACHE, backingId));
      },
      (e: unknown) => this.status(req, errnoOf(e)),
    );
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
    this.fs.read(fh, offset, size, data.subarray(0, size)).then(
      (n) => {
        writeOutHeader(this.readHeader, req, 0, n);
        this.send([this.readHeader, data.subarray(0, n)]);
        if (data.length === this.o.maxRead && this.spare.length < SPARE_BUFFERS) this.spare.push(data);
      },
      (e: unknown) => this.status(req, errnoOf(e)),
    );
  }

  private release(req: Request): void {
    const fh = decodeFh(req.body);
    const mode = this.modes.get(fh);
    this.modes.delete(fh);
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
  const data = `fd=${dev},rootmode=${ROOT_MODE},user_id=${uid},group_id=${gid}${o.allowOther ? ',allow_other' : ''}`;
  if (mountRaw('synthvhd', mountpoint, 'fuse.synthvhd', MS_RDONLY | MS_NOSUID | MS_NODEV, data) !== 0) {
    const err = lastErrno();
    closeSync(dev);
    throw new MountSyscallError(err.code === 'EPERM' ? 'mounting needs root (CAP_SYS_ADMIN): run synthvhd serve as root' : `mount(2) failed: ${err.code} (${err.text})`);
  }
  const { ended } = new Connection(dev, fs, o);
  return { ended, close: () => void ended.then(() => closeSync(dev)) };
}
