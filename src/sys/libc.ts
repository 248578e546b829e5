// The few Linux system calls that Node's fs module lacks (ioctl, lseek, statfs, preadv2, poll, mount, umount2), and read(2) and open(2) without exceptions, through koffi.
import koffi from 'koffi';
import { getSystemErrorMap } from 'node:util';

const libc = koffi.load('libc.so.6');

/** Pointer to struct file_clone_range from <linux/fs.h>, the argument of FICLONERANGE. */
export const fileCloneRangePtr = koffi.pointer(koffi.struct('file_clone_range', {
  src_fd: 'int64_t',
  src_offset: 'uint64_t',
  src_length: 'uint64_t',
  dest_offset: 'uint64_t',
}));

/** struct statfs of glibc on 64-bit Linux (all words are 64-bit longs; f_fsid is two ints). */
const StatFs = koffi.struct('statfs', {
  f_type: 'long',
  f_bsize: 'long',
  f_blocks: 'uint64_t',
  f_bfree: 'uint64_t',
  f_bavail: 'uint64_t',
  f_files: 'uint64_t',
  f_ffree: 'uint64_t',
  f_fsid: koffi.array('int', 2),
  f_namelen: 'long',
  f_frsize: 'long',
  f_flags: 'long',
  f_spare: koffi.array('long', 4),
});

/** ioctl is variadic in C: callers pass the argument's type and value after the request. */
export const ioctl = libc.func('int ioctl(int fd, unsigned long request, ...)') as (fd: number, request: number, argType: unknown, arg: unknown) => number;

/** off_t is 64-bit on 64-bit Linux; koffi returns a number for offsets below 2^53. */
export const lseek = libc.func('int64_t lseek(int fd, int64_t offset, int whence)') as (fd: number, offset: number, whence: number) => number;

/**
 * preadv2(2): pread with per-call flags such as RWF_NOWAIT. `iov` is the struct iovec array's
 * memory, filled by the caller (see iovecAt): koffi's conversion of an array of structs took
 * 3.2 us a call, a Buffer 2.1 us (a 4 KiB read of cached data, measured in a loop).
 */
export const preadv2 = libc.func('int64_t preadv2(int fd, void *iov, int iovcnt, int64_t offset, int flags)') as (
  fd: number,
  iov: Buffer,
  iovcnt: number,
  offset: number,
  flags: number,
) => number;

/** sizeof(struct iovec) on 64-bit Linux: a pointer and a size_t. */
export const IOVEC_SIZE = 16;

/** Buffer addresses as two 32-bit halves, asked once per buffer: BigInt arithmetic per call is costly (docs/architecture.md §6). */
const addresses = new WeakMap<Buffer, readonly [number, number]>();

/** Writes the struct iovec for `len` bytes (below 4 GiB) of `buf` from `off` into `iov` at `at`. */
export function iovecAt(iov: Buffer, at: number, buf: Buffer, off: number, len: number): void {
  let a = addresses.get(buf);
  if (!a) {
    const addr = koffi.address(buf);
    addresses.set(buf, (a = [Number(addr & 0xffffffffn), Number(addr >> 32n)]));
  }
  const lo = a[0] + off;
  const carry = Math.floor(lo / 2 ** 32);
  iov.writeUInt32LE(lo - carry * 2 ** 32, at);
  iov.writeUInt32LE(a[1] + carry, at + 4);
  iov.writeUInt32LE(len, at + 8);
  iov.writeUInt32LE(0, at + 12);
}

/** writev(2) of a struct iovec array filled by iovecAt: -1 and lastErrno() on failure, no exception. */
export const writevRaw = libc.func('int64_t writev(int fd, void *iov, int iovcnt)') as (fd: number, iov: Buffer, iovcnt: number) => number;

/** read(2) into a Buffer: an error is -1 and lastErrno(), without the exception fs.readSync throws. */
export const readRaw = libc.func('int64_t read(int fd, void *buf, size_t count)') as (fd: number, buf: Buffer, count: number) => number;

/**
 * open(2) without the exception fs.openSync throws: -1 and lastErrno() on failure. For probes
 * of files that are mostly absent, whose thrown ENOENTs are costly (docs/architecture.md §5, Sizes).
 * Variadic in C (the mode of O_CREAT, never passed here).
 */
export const openRaw = libc.func('int open(const char *path, int flags, ...)') as (path: string, flags: number) => number;

/**
 * close(2) of a descriptor from openRaw: Node's closeSync on a worker thread warns about any
 * descriptor its own fs did not open there.
 */
export const closeRaw = libc.func('int close(int fd)') as (fd: number) => number;

/** poll(2); `fds` holds struct pollfd { int fd; short events; short revents; } entries (8 bytes each). */
/** sched_yield(2): lets another thread that is ready to run have this CPU now. */
export const schedYield = libc.func('int sched_yield()') as () => number;

export const poll = libc.func('int poll(void *fds, unsigned long nfds, int timeout)') as (fds: Buffer, nfds: number, timeout: number) => number;

/** mount(2); `data` is the filesystem's option string. */
export const mount = libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)') as (
  source: string,
  target: string,
  fstype: string,
  flags: number,
  data: string,
) => number;

/** umount2(2); flags MNT_DETACH (2) for a lazy unmount. */
export const umount2 = libc.func('int umount2(const char *target, int flags)') as (target: string, flags: number) => number;
/** getxattr(2); with a null value and size 0 it returns the attribute's size, or -1 (ENODATA when absent). */
export const getxattr = libc.func('int64_t getxattr(const char *path, const char *name, void *value, size_t size)') as (path: string, name: string, value: null, size: number) => number;

/** posix_fadvise(2): returns the error number itself (0 on success), not -1 and errno. */
export const posixFadvise = libc.func('int posix_fadvise(int fd, int64_t offset, int64_t len, int advice)') as (fd: number, offset: number, len: number, advice: number) => number;
/** POSIX_FADV_WILLNEED, <fcntl.h> on Linux: start reading the range into the page cache, without waiting for it. */
export const POSIX_FADV_WILLNEED = 3;

/** syscall(2), for calls glibc 2.36 has no wrapper for (cachestat). */
export const syscall = libc.func('long syscall(long number, ...)') as (number: number, ...typesAndArgs: unknown[]) => number;

const statfsRaw = libc.func('statfs', 'int', ['const char *', koffi.out(koffi.pointer(StatFs))]) as (path: string, out: Record<string, unknown>) => number;
const fstatfsRaw = libc.func('fstatfs', 'int', ['int', koffi.out(koffi.pointer(StatFs))]) as (fd: number, out: Record<string, unknown>) => number;

export interface StatFsInfo {
  /** Filesystem magic number (f_type). */
  readonly type: number;
  /** f_bsize: the clone granularity (the sector size on btrfs and XFS, the recordsize on ZFS). */
  readonly blockSize: number;
}

export interface Errno {
  readonly errno: number;
  /** The errno name: EXDEV, EINVAL, EOPNOTSUPP, ... */
  readonly code: string;
  /** The system's text for it. */
  readonly text: string;
}

/** The error of a failed system call other than a clone (those throw ReflinkError). */
export function syscallError(what: string, error: Errno): Error {
  return new Error(`${what} failed: ${error.code} (${error.text})`);
}

// Later names win, so 95 reads EOPNOTSUPP rather than its alias ENOTSUP.
const errnoNames = new Map<number, string>(Object.entries(koffi.os.errno).map(([name, n]) => [n, name]));
/** Built on first use and kept: getSystemErrorMap() makes a new map on every call (docs/architecture.md §6). */
let systemErrors: Map<number, [string, string]> | undefined;

/** The errno value the last libc call on this thread left behind. */
export function lastErrno(): Errno {
  const errno = koffi.errno();
  return {
    errno,
    code: errnoNames.get(errno) ?? `errno ${errno}`,
    text: (systemErrors ??= getSystemErrorMap()).get(-errno)?.[1] ?? 'unknown error',
  };
}

function toInfo(s: Record<string, unknown>): StatFsInfo {
  // f_type is signed long: magic numbers above 2^31 (btrfs 0x9123683E) fit, no sign issue on 64-bit.
  return { type: Number(s['f_type']), blockSize: Number(s['f_bsize']) };
}

export function statfs(path: string): StatFsInfo {
  const out: Record<string, unknown> = {};
  if (statfsRaw(path, out) !== 0) throw syscallError(`statfs ${path}`, lastErrno());
  return toInfo(out);
}

export function fstatfs(fd: number): StatFsInfo {
  const out: Record<string, unknown> = {};
  if (fstatfsRaw(fd, out) !== 0) throw syscallError(`fstatfs fd ${fd}`, lastErrno());
  return toInfo(out);
}
