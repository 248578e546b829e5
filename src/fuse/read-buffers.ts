// The main thread's buffers for READ replies, reused: a 1 MiB allocation per request would
// dominate a read (docs/fuse-protocol.md §6).
import { alignedBuffer } from '../sys/aligned-buffer.js';
import { OUT_HEADER_SIZE } from './protocol.js';

/** Reply buffers kept for reuse: as many as the readahead requests usually in flight. */
const SPARE_BUFFERS = 16;

export class ReadBuffers {
  private readonly spare: Buffer[] = [];
  /** The header of a read reply, reused: a reply is written synchronously as soon as it is filled. */
  readonly header = Buffer.alloc(OUT_HEADER_SIZE);

  constructor(private readonly maxRead: number) {}

  /** A page-aligned buffer of at least `size` bytes, so that the filesystem may read O_DIRECT straight into it. */
  take(size: number): Buffer {
    return size <= this.maxRead ? (this.spare.pop() ?? alignedBuffer(this.maxRead)) : alignedBuffer(size);
  }

  /** Gives back a buffer from take() once its reply is written. */
  give(data: Buffer): void {
    if (data.length === this.maxRead && this.spare.length < SPARE_BUFFERS) this.spare.push(data);
  }
}
