import type { Layout } from '../disk/layout.js';

/** A whole virtual disk, ready to be wrapped in a VHD or VHDX container. */
export interface DiskImage {
  /** The raw disk bytes (docs/architecture.md §1). */
  readonly layout: Layout;
  /** Logical sector size of the disk. */
  readonly sectorSize: 512 | 4096;
  /** 16 bytes, stable and unique per backup: the VHD Unique Id and the VHDX Virtual Disk ID. */
  readonly id: Buffer;
  /** Backup time; goes into the VHD footer time stamp. */
  readonly timestamp: Date;
}

/** A disk that a container format cannot hold, or a malformed DiskImage. */
export class ContainerError extends Error {
  override name = 'ContainerError';
}
