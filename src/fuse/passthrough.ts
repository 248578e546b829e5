// Kernel passthrough (Linux 6.9, fs/fuse/iomode.c): backing ids for files the kernel reads
// itself, and which handles of each inode read how (docs/fuse-protocol.md §5).
import { ioctl, lastErrno } from '../sys/libc.js';
import type { OpenHandle } from './fuse-fs.js';
import { BACKING_MAP_SIZE } from './protocol.js';

/** <linux/fuse.h> FUSE_DEV_IOC_BACKING_OPEN = _IOW(229, 1, struct fuse_backing_map). */
const FUSE_DEV_IOC_BACKING_OPEN = 0x4010e501;
/** <linux/fuse.h> FUSE_DEV_IOC_BACKING_CLOSE = _IOW(229, 2, uint32_t). */
const FUSE_DEV_IOC_BACKING_CLOSE = 0x4004e502;

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

export class PassthroughIds {
  private readonly modes = new Map<number, HandleMode>();
  private readonly inodes = new Map<number, InodeIo>();
  /** Set at INIT when the kernel offers FUSE_PASSTHROUGH. */
  enabled = false;
  private failed = false;

  constructor(private readonly dev: number, private readonly log: (line: string) => void) {}

  /** Counts a new handle of `ino`; its backing id when the kernel is to read it itself, else 0. */
  opened(ino: number, h: OpenHandle): number {
    const io = this.inodes.get(ino) ?? { cached: 0, passthrough: 0, backingId: 0 };
    const backingId = this.backingFor(io, h);
    const passthrough = backingId > 0;
    if (passthrough) io.passthrough++;
    else io.cached++;
    this.inodes.set(ino, io);
    this.modes.set(h.fh, { ino, passthrough });
    return backingId;
  }

  /**
   * Whether the kernel reads `ino` from a backing file now: while it does, it refuses any other
   * kind of open of the inode (fs/fuse/iomode.c fuse_file_io_open), a writer's direct I/O too.
   */
  inPassthrough(ino: number): boolean {
    return (this.inodes.get(ino)?.passthrough ?? 0) > 0;
  }

  /** Forgets a handle; the inode's backing id is closed with its last passthrough handle. */
  released(fh: number): void {
    const mode = this.modes.get(fh);
    if (!mode) return;
    this.modes.delete(fh);
    const io = this.inodes.get(mode.ino)!;
    if (mode.passthrough) io.passthrough--;
    else io.cached--;
    if (io.passthrough === 0 && io.backingId > 0) {
      ioctl(this.dev, FUSE_DEV_IOC_BACKING_CLOSE, 'void *', Uint32Array.of(io.backingId));
      io.backingId = 0;
    }
    if (io.cached === 0 && io.passthrough === 0) this.inodes.delete(mode.ino);
  }

  /**
   * The backing id for a passthrough open, or 0 to serve this handle through read(). All
   * passthrough handles of an inode share one backing file, and none may coexist with a cached
   * handle (fs/fuse/iomode.c), so an inode already read through read() stays that way until closed.
   */
  private backingFor(io: InodeIo, h: OpenHandle): number {
    if (io.passthrough > 0) return io.backingId;
    if (!this.enabled || h.wholeFileFd === undefined || io.cached > 0) return 0;
    const map = Buffer.alloc(BACKING_MAP_SIZE);
    map.writeInt32LE(h.wholeFileFd, 0);
    const id = ioctl(this.dev, FUSE_DEV_IOC_BACKING_OPEN, 'void *', map);
    if (id > 0) return (io.backingId = id);
    if (!this.failed) {
      this.failed = true;
      const err = lastErrno();
      this.log(`kernel passthrough refused (${err.code}: ${err.text}): built disks are read through synthvhd instead`);
    }
    return 0;
  }
}
