// The FUSE operations over a Namespace: read-only, concurrent, reading through open handles.
import { constants } from 'node:fs';
import Fuse, { type FuseOps, type FuseStat, type FuseStatfs } from 'fuse-native';
import { type FileNode, InodeAllocator, Namespace, type Node } from './namespace.js';
import type { FileOpener, OpenFile } from './open-file.js';
import type { VirtualFile } from './virtual-file.js';

/** Unit of st_blocks (stat(2)). */
const STAT_BLOCK = 512;
/** Preferred I/O size and statfs block size. */
const BLOCK_SIZE = 4096;
/** statfs f_flag ST_RDONLY (statvfs(3)). */
const ST_RDONLY = 1;
const NAME_MAX = 255;
const U32_MAX = 0xffffffff;
/** The access-mode bits of open(2) flags, <fcntl.h>. */
const O_ACCMODE = 3;

/** Every operation that would change something answers EROFS. */
const WRITE_OPS = [
  'write', 'truncate', 'ftruncate', 'create', 'mknod', 'mkdir', 'rmdir', 'unlink', 'rename',
  'link', 'symlink', 'chmod', 'chown', 'utimens', 'setxattr', 'removexattr',
] as const;

function refuse(...args: unknown[]): void {
  (args[args.length - 1] as (code: number) => void)(Fuse.EROFS);
}

export class VirtualFs {
  private ns: Namespace;
  private readonly inodes = new InodeAllocator();
  /** Open handles by fh, with the node they were opened from (it may leave the namespace). */
  private readonly handles = new Map<number, { readonly open: OpenFile; readonly node: FileNode }>();
  private lastHandle = 0;
  /** Files and handles whose failure was already logged: one line each, not one per request. */
  private readonly loggedOpen = new Set<string>();
  private readonly loggedRead = new WeakSet<OpenFile>();
  private readonly uid = process.getuid?.() ?? 0;
  private readonly gid = process.getgid?.() ?? 0;
  private readonly startTime = new Date();

  constructor(private readonly opener: FileOpener, private readonly log: (line: string) => void) {
    this.ns = new Namespace([], this.inodes, this.startTime);
  }

  /** Shows a new scan; returns why some files were left out. Open handles are not affected. */
  update(files: readonly VirtualFile[]): string[] {
    this.ns = new Namespace(files, this.inodes, this.startTime);
    return this.ns.warnings;
  }

  /** Files currently shown, by key. */
  files(): Map<string, VirtualFile> {
    return this.ns.files();
  }

  ops(): FuseOps {
    const ops: FuseOps = {
      getattr: (path, cb) => {
        const stat = this.statAt(path);
        if (stat) cb(0, stat);
        else cb(Fuse.ENOENT);
      },
      readdir: (path, cb) => {
        const node = this.ns.lookup(path);
        if (!node) return cb(Fuse.ENOENT);
        if (node.kind === 'file') return cb(Fuse.ENOTDIR);
        const children: Node[] = node.kind === 'root' ? [...node.dirs.values()] : [...node.files.values()];
        const names = node.kind === 'root' ? [...node.dirs.keys()] : [...node.files.keys()];
        cb(0, ['.', '..', ...names], [this.stat(node), this.stat(this.ns.root), ...children.map((c) => this.stat(c))]);
      },
      open: (path, flags, cb) => {
        if ((flags & O_ACCMODE) !== constants.O_RDONLY) return cb(Fuse.EROFS);
        const node = this.ns.lookup(path);
        if (!node) return cb(Fuse.ENOENT);
        if (node.kind !== 'file') return cb(Fuse.EISDIR);
        this.opener.open(node.file).then(
          (open) => cb(0, this.register({ open, node })),
          (e: Error) => {
            if (!this.loggedOpen.has(node.file.key)) {
              this.loggedOpen.add(node.file.key);
              this.log(`${node.file.key}: cannot open: ${e.message}`);
            }
            cb(Fuse.EIO);
          },
        );
      },
      read: (_path, fd, buf, len, pos, cb) => {
        const handle = this.handles.get(fd)?.open;
        if (!handle) return cb(Fuse.EBADF);
        handle.read(pos, buf, len).then(cb, (e: Error) => {
          if (!this.loggedRead.has(handle)) {
            this.loggedRead.add(handle);
            this.log(`${handle.file.key}: read failed: ${e.message}`);
          }
          cb(Fuse.EIO);
        });
      },
      release: (_path, fd, cb) => {
        this.handles.get(fd)?.open.release();
        this.handles.delete(fd);
        cb(0);
      },
      statfs: (_path, cb) => cb(0, this.statfs()),
      flush: (_path, _fd, cb) => cb(0),
      fsync: (_path, _datasync, _fd, cb) => cb(0),
    };
    for (const name of WRITE_OPS) (ops as Record<string, unknown>)[name] = refuse;
    return ops;
  }

  /** Releases every open handle (at unmount). */
  releaseAll(): void {
    for (const h of this.handles.values()) h.open.release();
    this.handles.clear();
  }

  private register(handle: { open: OpenFile; node: FileNode }): number {
    // fh is a u32 in fuse-native; skip 0 and numbers still in use after wrapping.
    do this.lastHandle = this.lastHandle >= U32_MAX ? 1 : this.lastHandle + 1;
    while (this.handles.has(this.lastHandle));
    this.handles.set(this.lastHandle, handle);
    return this.lastHandle;
  }

  private statAt(path: string): FuseStat | undefined {
    const node = this.ns.lookup(path);
    if (node) return this.stat(node);
    // A file rescanned away while still open keeps answering fstat through its handle.
    for (const { node: n } of this.handles.values()) if (`/${n.file.dir}/${n.file.name}` === path) return this.stat(n);
    return undefined;
  }

  private stat(node: Node): FuseStat {
    const common = { uid: this.uid, gid: this.gid, ino: node.ino, blksize: BLOCK_SIZE };
    if (node.kind === 'file') {
      const { size, mtime } = node.file;
      return { ...common, mode: constants.S_IFREG | 0o444, size, nlink: 1, blocks: Math.ceil(size / STAT_BLOCK), atime: mtime, mtime, ctime: mtime };
    }
    const nlink = node.kind === 'root' ? 2 + node.dirs.size : 2;
    return { ...common, mode: constants.S_IFDIR | 0o555, size: BLOCK_SIZE, nlink, blocks: 0, atime: node.mtime, mtime: node.mtime, ctime: node.mtime };
  }

  /** Size of everything shown, in blocks big enough for the u32 fields fuse-native passes. */
  private statfs(): FuseStatfs {
    let bytes = 0;
    let inodes = 1;
    for (const d of this.ns.root.dirs.values()) {
      inodes += 1 + d.files.size;
      for (const f of d.files.values()) bytes += f.file.size;
    }
    let frsize = BLOCK_SIZE;
    while (Math.ceil(bytes / frsize) > U32_MAX) frsize *= 2;
    return { bsize: frsize, frsize, blocks: Math.ceil(bytes / frsize), bfree: 0, bavail: 0, files: inodes, ffree: 0, favail: 0, fsid: 0, flag: ST_RDONLY, namemax: NAME_MAX };
  }
}
