// How a FUSE session is set up (src/fuse/mount.ts chooses the values, each with its reason).

export interface SessionOptions {
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
