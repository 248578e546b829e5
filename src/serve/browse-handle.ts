// An open file inside a backup's volume whose bytes are decoded on read (a compressed NTFS or WOF
// file: FileData of kind `decoded`); files whose data is a Layout open as OpenFile does.
import type { Bytes } from '../base/units.js';
import type { FileData } from '../filesystem/volume-fs.js';
import type { SharedLayout } from '../io/shared-layout.js';
import { SEEK_DATA, type SEEK_HOLE } from '../sys/sparse.js';

/** What VirtualFs reads an open handle through (OpenFile, or a DecodedFile). */
export interface ReadableHandle {
  /** Names the file in log lines. */
  readonly key: string;
  readonly wholeFileFd?: number | undefined;
  /** The layout in shared memory, for the request workers (OpenHandle.share). */
  share?(): SharedLayout;
  read(pos: Bytes, buf: Buffer, length: Bytes): Promise<number>;
  /** lseek(2) SEEK_DATA / SEEK_HOLE: undefined for ENXIO. */
  seek(offset: Bytes, whence: typeof SEEK_DATA | typeof SEEK_HOLE): Bytes | undefined;
  release(): void;
}

export class DecodedFile implements ReadableHandle {
  constructor(
    readonly key: string,
    private readonly data: Extract<FileData, { kind: 'decoded' }>,
    private readonly released: () => void,
  ) {}

  async read(pos: Bytes, buf: Buffer, length: Bytes): Promise<number> {
    const bytes = await this.data.read(pos, Math.min(length, buf.length));
    return bytes.copy(buf);
  }

  /** Decoded data has no holes: all data up to its size. */
  seek(offset: Bytes, whence: typeof SEEK_DATA | typeof SEEK_HOLE): Bytes | undefined {
    if (offset >= this.data.size) return undefined;
    return whence === SEEK_DATA ? offset : this.data.size;
  }

  release(): void {
    this.released();
  }
}

/** `handle`, calling `closed` once it is released. */
export function afterRelease(handle: ReadableHandle, closed: () => void): ReadableHandle {
  return {
    key: handle.key,
    wholeFileFd: handle.wholeFileFd,
    ...(handle.share && { share: () => handle.share!() }),
    read: (pos, buf, length) => handle.read(pos, buf, length),
    seek: (offset, whence) => handle.seek(offset, whence),
    release() {
      handle.release();
      closed();
    },
  };
}
