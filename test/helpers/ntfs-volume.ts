// NTFS volumes for the NTFS reader's tests: made by mkntfs on a file, written and read back
// through ntfs-3g (FUSE), and walked both through ntfs-3g (the oracle) and through the reader.
import { createHash } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { readdir, readlink, readFile, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Bytes } from '../../src/base/units.js';
import type { FileData, FsNode, Volume, VolumeFileSystem } from '../../src/filesystem/volume-fs.js';
import { readLayout } from '../../src/io/layout-reader.js';
import { requireTool, run } from './run.js';

export interface NtfsGeometry {
  /** mkntfs -s */
  readonly sectorSize?: number;
  /** mkntfs -c */
  readonly clusterSize?: number;
}

/** A fresh NTFS volume of `sizeMiB` in the file `path` (mkntfs -F -Q on a file). */
export async function makeNtfsImage(path: string, sizeMiB: number, geometry: NtfsGeometry = {}): Promise<void> {
  requireTool('mkntfs');
  await run('truncate', ['-s', `${sizeMiB}M`, path]);
  const args = ['-F', '-Q', '-q'];
  if (geometry.sectorSize) args.push('-s', String(geometry.sectorSize));
  if (geometry.clusterSize) args.push('-c', String(geometry.clusterSize));
  await run('mkntfs', [...args, path]);
}

/** Mounts `image` with ntfs-3g (`options` as for -o) on `mountpoint`, runs `f`, and always unmounts. */
export async function withNtfs3g<T>(image: string, mountpoint: string, options: readonly string[], f: (mnt: string) => Promise<T>): Promise<T> {
  requireTool('ntfs-3g');
  await run('mkdir', ['-p', mountpoint]);
  await run('ntfs-3g', [...(options.length ? ['-o', options.join(',')] : []), image, mountpoint]);
  try {
    return await f(mountpoint);
  } finally {
    await run('umount', [mountpoint]).catch(() => run('umount', ['-l', mountpoint]));
  }
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Every byte of a file's data: its layout read from the backing file, or decoded. */
export async function fileBytes(data: FileData): Promise<Buffer> {
  if (data.kind === 'decoded') return data.read(0, data.size);
  const buf = Buffer.alloc(data.layout.size);
  const fds = new Map<string, number>();
  try {
    const provider = (s: { path: string }): { fd: number } => {
      if (!fds.has(s.path)) fds.set(s.path, openSync(s.path, 'r'));
      return { fd: fds.get(s.path)! };
    };
    await readLayout(data.layout, 0, buf, data.layout.size, provider);
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
  return buf;
}

/**
 * Per path: a line of type, size, nlink of files and the bytes' hash or the link's target, and
 * the mtime apart (a double in ms holds an NT time only to a fraction of a microsecond).
 */
export interface Tree {
  readonly lines: Record<string, string>;
  readonly mtimes: Record<string, number>;
}

/** Paths whose mtimes differ by a microsecond or more. */
export function mtimeDifferences(a: Tree, b: Tree): string[] {
  return Object.keys(a.mtimes).filter((p) => !(Math.abs(a.mtimes[p]! - (b.mtimes[p] ?? NaN)) < 0.001)).map((p) => `${p}: ${a.mtimes[p]} vs ${b.mtimes[p]}`);
}

/** The oracle: the tree as ntfs-3g shows it at `mnt`. */
export async function mountedTree(mnt: string): Promise<Tree> {
  const out: Tree = { lines: {}, mtimes: {} };
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of await readdir(dir)) {
      const p = join(dir, name);
      const path = `${rel}/${name}`;
      const st = await lstat(p, { bigint: true });
      out.mtimes[path] = Number(st.mtimeNs) / 1e6;
      if (st.isDirectory()) {
        out.lines[path] = 'dir';
        await walk(p, path);
      } else if (st.isSymbolicLink()) out.lines[path] = `symlink ${st.size} ${await readlink(p)}`;
      else out.lines[path] = `file ${st.size} ${st.nlink} ${sha(await readFile(p))}`;
    }
  };
  await walk(mnt, '');
  return out;
}

/** The same lines from the reader; a folder or file the reader fails on shows its error. */
export async function readerTree(fs: VolumeFileSystem): Promise<Tree> {
  const out: Tree = { lines: {}, mtimes: {} };
  const walk = async (dir: FsNode, rel: string): Promise<void> => {
    for (const { name, node } of await fs.list(dir)) {
      const path = `${rel}/${name}`;
      out.mtimes[path] = node.mtimeMs;
      if (node.type === 'dir') {
        out.lines[path] = 'dir';
        await walk(node, path);
      } else if (node.type === 'symlink') out.lines[path] = `symlink ${node.size} ${await fs.readlink(node)}`;
      else out.lines[path] = `file ${node.size} ${node.nlink} ${sha(await fileBytes(await fs.data(node)))}`;
    }
  };
  await walk(await fs.root(), '');
  return out;
}

/** A Volume over bytes in memory (for fuzzing), named and sourced as `name`. */
export function memoryVolume(name: string, bytes: Buffer): Volume {
  const read = async (offset: Bytes, length: number): Promise<Buffer> => {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > bytes.length) {
      throw new RangeError(`${name}: read of ${length} bytes at ${offset} lies outside the ${bytes.length}-byte volume`);
    }
    return Buffer.from(bytes.subarray(offset, offset + length));
  };
  return { name, size: bytes.length, source: { path: name }, sourceOffset: 0, read };
}
