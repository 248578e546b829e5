// Kernel passthrough (Linux 6.9, fs/fuse/iomode.c): backing ids for files the kernel reads
// itself, and which handles of each inode read how (docs/fuse-protocol.md §5).
import { ioctl, lastErrno } from '../sys/libc.js';
import type { OpenHandle } from './fuse-fs.js';
import { BACKING_MAP_SIZE } from './protocol.js';

/** <linux/fuse.h> FUSE_DEV_IOC_BACKING_OPEN = _IOW(229, 1, struct fuse_backing_map). */
const FUSE_DEV_IOC_BACKING_OPEN = 0x4010e501;
/** <linux/fuse.h> FUSE_DEV_IOC_BACKING_CLOSE = _IOW(229, 2, uint32_t). */
const FUSE_DEV_IOC_BACKING_CLOSE = 0x4004e502;

/**
 * How a handle reads: through read() into the inode's page cache, by the kernel from a backing
 * file, or through the server with no cache (a writer's FOPEN_DIRECT_IO: the kernel lets such a
 * handle through beside anything but a backing file).
 */
type Mode = 'cached' | 'passthrough' | 'direct';

interface HandleMode {
  readonly ino: number;
  readonly mode: Mode;
}

/**
 * Per inode: the kernel refuses (EIO) an open whose mode differs from the inode's open handles,
 * and all its passthrough handles share one backing file: the disk as served, or one writer's view.
 */
interface InodeIo extends Record<Mode, number> {
  backingId: number;
  /** The KernelView owner whose view the backing file is; undefined for the disk as served. */
  owner: object | undefined;
}

/** How the kernel is to treat a handle: its backing id (0: none) and the FOPEN flags that go with it. */
export interface HandleIo {
  readonly backingId: number;
  /** Reads and writes of a passthrough handle still come to the server (FOPEN_DIRECT_IO beside FOPEN_PASSTHROUGH). */
  readonly throughServer: boolean;
}

/** A writer the kernel cannot take beside the inode's backing file: EBUSY. */
export const REFUSED: HandleIo = { backingId: -1, throughServer: false };

export class PassthroughIds {
  private readonly modes = new Map<number, HandleMode>();
  private readonly inodes = new Map<number, InodeIo>();
  /** Set at INIT when the kernel offers FUSE_PASSTHROUGH. */
  enabled = false;
  private failed = false;

  constructor(private readonly dev: number, private readonly log: (line: string) => void) {}

  /**
   * A reader's new handle of `ino`. While a writer's view backs the inode, the reader keeps that
   * backing file (the kernel wants it) but its reads come to the server, which reads the disk as
   * served (docs/overlays.md §4).
   */
  opened(ino: number, h: OpenHandle): HandleIo {
    const io = this.inode(ino);
    if (io.passthrough > 0) return this.count(ino, h.fh, io, { backingId: io.backingId, throughServer: io.owner !== undefined });
    const backingId = io.cached > 0 || h.wholeFileFd === undefined ? 0 : this.register(io, h.wholeFileFd, undefined);
    return this.count(ino, h.fh, io, { backingId, throughServer: false }, 'cached');
  }

  /**
   * A writer's new handle of `ino`: passthrough into its own view when the kernel can take that
   * view as the inode's backing file, else direct I/O (a handle the kernel lets through beside
   * anything but a backing file); REFUSED beside another backing file.
   */
  writerOpened(ino: number, h: OpenHandle): HandleIo {
    const io = this.inode(ino);
    const view = h.kernelView;
    if (io.passthrough > 0) return view && io.owner === view.owner ? this.count(ino, h.fh, io, { backingId: io.backingId, throughServer: false }) : REFUSED;
    const backingId = !view || io.cached > 0 || !this.enabled || !view.claim() ? 0 : this.register(io, view.fd, view.owner);
    return this.count(ino, h.fh, io, { backingId, throughServer: false }, 'direct');
  }

  /** Forgets a handle; the inode's backing id is closed with its last passthrough handle. */
  released(fh: number): void {
    const mode = this.modes.get(fh);
    if (!mode) return;
    this.modes.delete(fh);
    const io = this.inodes.get(mode.ino)!;
    io[mode.mode]--;
    if (io.passthrough === 0 && io.backingId > 0) {
      ioctl(this.dev, FUSE_DEV_IOC_BACKING_CLOSE, 'void *', Uint32Array.of(io.backingId));
      io.backingId = 0;
      io.owner = undefined;
    }
    if (io.cached === 0 && io.passthrough === 0 && io.direct === 0) this.inodes.delete(mode.ino);
  }

  private inode(ino: number): InodeIo {
    let io = this.inodes.get(ino);
    if (!io) this.inodes.set(ino, (io = { cached: 0, passthrough: 0, direct: 0, backingId: 0, owner: undefined }));
    return io;
  }

  /** Counts the handle: passthrough with a backing id, else as `otherwise`. */
  private count(ino: number, fh: number, io: InodeIo, r: HandleIo, otherwise: Mode = 'passthrough'): HandleIo {
    const mode = r.backingId > 0 ? 'passthrough' : otherwise;
    io[mode]++;
    this.modes.set(fh, { ino, mode });
    return r;
  }

  /**
   * Makes `fd` the inode's backing file (FUSE_DEV_IOC_BACKING_OPEN); its id, or 0 to serve the
   * handle through read(). One failure is logged: the kernel refuses them all alike.
   */
  private register(io: InodeIo, fd: number, owner: object | undefined): number {
    if (!this.enabled) return 0;
    const map = Buffer.alloc(BACKING_MAP_SIZE);
    map.writeInt32LE(fd, 0);
    const id = ioctl(this.dev, FUSE_DEV_IOC_BACKING_OPEN, 'void *', map);
    if (id > 0) {
      io.owner = owner;
      return (io.backingId = id);
    }
    if (!this.failed) {
      this.failed = true;
      const err = lastErrno();
      this.log(`kernel passthrough refused (${err.code}: ${err.text}): built disks are read through synthvhd instead`);
    }
    return 0;
  }
}
