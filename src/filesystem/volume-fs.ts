// What every reader of a filesystem inside a backed-up volume offers (issue 22). The volume was
// written by the machine that was backed up: every reader treats its bytes as hostile
// (docs/filesystems.md).
import type { Bytes } from '../base/units.js';
import type { Layout, SourceFile } from '../disk/layout.js';

/** The bytes of one volume: where they lie in a backing file, and how to read them. */
export interface Volume {
  /** Names the volume in errors and log lines (the `.raw` path). */
  readonly name: string;
  readonly size: Bytes;
  /** The file that holds the volume, and the volume's first byte in it. */
  readonly source: SourceFile;
  readonly sourceOffset: Bytes;
  /** `length` bytes at `offset` of the volume, in a buffer the caller owns (the NTFS reader applies fixups in place); rejects a range outside [0, size). */
  read(offset: Bytes, length: number): Promise<Buffer>;
}

export type NodeType = 'file' | 'dir' | 'symlink';

/** One file, folder or symlink; the same `id` for every hard link of it. */
export interface FsNode {
  readonly id: number;
  readonly type: NodeType;
  readonly size: Bytes;
  /** Milliseconds since the Unix epoch. */
  readonly mtimeMs: number;
  readonly atimeMs: number;
  readonly ctimeMs: number;
  /** Creation time where the filesystem stores one (NTFS, FAT, ext4's crtime). */
  readonly birthtimeMs?: number;
  readonly nlink: number;
  /** FILE_ATTRIBUTE_* bits as NTFS and FAT store them (hidden, system, read-only, ...). */
  readonly dosAttributes?: number;
}

export interface DirEntry {
  readonly name: string;
  readonly node: FsNode;
}

/**
 * A file's bytes: a Layout of the volume's backing file (extents and data runs as `file`
 * segments at `sourceOffset + volume offset`, holes as `zero`, resident or inline data as
 * `bytes`), or, for compressed data, a decoder that computes the bytes on read.
 */
export type FileData =
  | { readonly kind: 'layout'; readonly layout: Layout }
  | { readonly kind: 'decoded'; readonly size: Bytes; read(pos: Bytes, length: number): Promise<Buffer> };

export type FsType = 'ntfs' | 'fat12' | 'fat16' | 'fat32' | 'ext4';

export interface VolumeFileSystem {
  readonly type: FsType;
  root(): Promise<FsNode>;
  /** Every entry of a folder once (NTFS: by its Win32 name, not its DOS 8.3 one), no `.`/`..`. */
  list(dir: FsNode): Promise<readonly DirEntry[]>;
  /** One entry by name, as the filesystem compares names (NTFS and FAT: case-insensitive). */
  lookup(dir: FsNode, name: string): Promise<DirEntry | undefined>;
  readlink(link: FsNode): Promise<string>;
  data(file: FsNode): Promise<FileData>;
}

/**
 * A structure of the volume that cannot be read: what depends on it fails (EIO), everything
 * else keeps working. Caught by type where a FUSE request or `extract` turns it into EIO.
 */
export class CorruptVolumeError extends Error {
  override name = 'CorruptVolumeError';
  constructor(volume: Volume, what: string) {
    super(`${volume.name}: ${what}`);
  }
}

/** Data the reader cannot decode (EFS, an unknown compression): EIO, never wrong bytes. */
export class UnsupportedDataError extends Error {
  override name = 'UnsupportedDataError';
}
