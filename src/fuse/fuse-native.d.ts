// The part of fuse-native (v2.2.6, untyped) that synthvhd uses; see its index.js.
declare module 'fuse-native' {
  type Cb<T extends unknown[] = []> = (code: number, ...result: T) => void;

  export interface FuseStat {
    mode: number;
    uid: number;
    gid: number;
    size: number;
    nlink: number;
    /** Passed to the kernel as a u32 (honoured with -o use_ino). */
    ino: number;
    blksize: number;
    blocks: number;
    atime: Date | number;
    mtime: Date | number;
    ctime: Date | number;
  }

  export interface FuseStatfs {
    bsize: number;
    frsize: number;
    blocks: number;
    bfree: number;
    bavail: number;
    files: number;
    ffree: number;
    favail: number;
    fsid: number;
    flag: number;
    namemax: number;
  }

  export interface FuseOps {
    init?(cb: Cb): void;
    getattr?(path: string, cb: Cb<[FuseStat?]>): void;
    readdir?(path: string, cb: Cb<[string[]?, FuseStat[]?]>): void;
    statfs?(path: string, cb: Cb<[FuseStatfs?]>): void;
    open?(path: string, flags: number, cb: Cb<[number?]>): void;
    read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErr: number) => void): void;
    write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErr: number) => void): void;
    release?(path: string, fd: number, cb: Cb): void;
    flush?(path: string, fd: number, cb: Cb): void;
    fsync?(path: string, datasync: number, fd: number, cb: Cb): void;
    truncate?(path: string, size: number, cb: Cb): void;
    ftruncate?(path: string, fd: number, size: number, cb: Cb): void;
    create?(path: string, mode: number, cb: Cb<[number?]>): void;
    mknod?(path: string, mode: number, dev: number, cb: Cb): void;
    mkdir?(path: string, mode: number, cb: Cb): void;
    rmdir?(path: string, cb: Cb): void;
    unlink?(path: string, cb: Cb): void;
    rename?(src: string, dest: string, cb: Cb): void;
    link?(src: string, dest: string, cb: Cb): void;
    symlink?(src: string, dest: string, cb: Cb): void;
    chmod?(path: string, mode: number, cb: Cb): void;
    chown?(path: string, uid: number, gid: number, cb: Cb): void;
    utimens?(path: string, atime: number, mtime: number, cb: Cb): void;
    setxattr?(path: string, name: string, value: Buffer, position: number, flags: number, cb: Cb): void;
    removexattr?(path: string, name: string, cb: Cb): void;
  }

  export interface FuseOptions {
    allowOther?: boolean;
    kernelCache?: boolean;
    maxRead?: number;
    attrTimeout?: number;
    entryTimeout?: number;
    fsname?: string;
    subtype?: string;
    uid?: number;
    gid?: number;
    debug?: boolean;
    /** Per-operation timeout in ms; false disables it. */
    timeout?: number | false;
  }

  export default class Fuse {
    constructor(mnt: string, ops: FuseOps, opts?: FuseOptions);
    mount(cb: (err: Error | null) => void): void;
    unmount(cb: (err: Error | null) => void): void;
    static unmount(mnt: string, cb: (err: Error | null) => void): void;
    static readonly ENOENT: number;
    static readonly EIO: number;
    static readonly EROFS: number;
    static readonly ENOTDIR: number;
    static readonly EISDIR: number;
    static readonly EBADF: number;
  }
}
