// ext4 volumes built with mkfs.ext4 and filled through the kernel, and read-only loop mounts of
// them (or of a volume inside a `.raw`) as the oracle for the ext4 reader.
import { createHash } from 'node:crypto';
import { lstat, mkdtemp, open, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WalkedNode } from './volume-walk.js';
import { run } from './run.js';

export interface Mounted {
  readonly mountpoint: string;
  cleanup(): Promise<void>;
}

/** Mounts `img` (or its bytes from `offset` for `size`) through a read-only loop device, journal not replayed. */
export async function mountReadOnly(img: string, offset = 0, size?: number): Promise<Mounted> {
  const mountpoint = await mkdtemp(join(tmpdir(), 'synthvhd-ext4-ro-'));
  const range = size === undefined ? [] : ['--offset', String(offset), '--sizelimit', String(size)];
  const device = (await run('losetup', ['-r', '--find', '--show', ...range, img])).trim();
  try {
    await run('mount', ['-t', 'ext4', '-o', 'ro,noload', device, mountpoint]);
  } catch (e) {
    await run('losetup', ['-d', device]).catch(() => undefined);
    await rm(mountpoint, { recursive: true, force: true });
    throw e;
  }
  return {
    mountpoint,
    async cleanup() {
      await run('umount', [mountpoint]).catch(() => run('umount', ['-l', mountpoint]).catch(() => undefined));
      await run('losetup', ['-d', device]).catch(() => undefined);
      await rm(mountpoint, { recursive: true, force: true });
    },
  };
}

/** Makes an ext4 image of `sizeMiB` with mkfs.ext4 `options`, fills it through a read-write mount, unmounts it. */
export async function makeExt4Image(img: string, sizeMiB: number, options: readonly string[], fill: (root: string) => Promise<void>): Promise<void> {
  await run('truncate', ['-s', `${sizeMiB}M`, img]);
  await run('mkfs.ext4', ['-q', '-F', ...options, img]);
  const mountpoint = await mkdtemp(join(tmpdir(), 'synthvhd-ext4-rw-'));
  const device = (await run('losetup', ['--find', '--show', img])).trim();
  try {
    await run('mount', ['-t', 'ext4', device, mountpoint]);
    try {
      await fill(mountpoint);
    } finally {
      await run('umount', [mountpoint]);
    }
  } finally {
    await run('losetup', ['-d', device]).catch(() => undefined);
    await rm(mountpoint, { recursive: true, force: true });
  }
}

async function fileSha(path: string): Promise<string> {
  const h = createHash('sha256');
  const fh = await open(path, 'r');
  try {
    for await (const chunk of fh.createReadStream()) h.update(chunk as Buffer);
  } finally {
    await fh.close().catch(() => undefined);
  }
  return h.digest('hex');
}

/** Nanoseconds as milliseconds, computed as the reader does from seconds and nanoseconds. */
function msOf(ns: bigint): number {
  let sec = ns / 1_000_000_000n;
  let rest = ns % 1_000_000_000n;
  if (rest < 0n) {
    sec -= 1n;
    rest += 1_000_000_000n;
  }
  return Number(sec) * 1000 + Number(rest) / 1e6;
}

/** What the kernel says of every file, folder and symlink below `root` (devices, FIFOs and sockets left out). */
export async function walkMount(root: string): Promise<Map<string, WalkedNode>> {
  const out = new Map<string, WalkedNode>();
  const visit = async (path: string, abs: string): Promise<void> => {
    const st = await lstat(abs, { bigint: true });
    const rec = { size: Number(st.size), mtimeMs: msOf(st.mtimeNs), id: Number(st.ino), nlink: Number(st.nlink) };
    if (st.isSymbolicLink()) out.set(path, { type: 'symlink', ...rec, target: await readlink(abs) });
    else if (st.isFile()) out.set(path, { type: 'file', ...rec, sha256: await fileSha(abs) });
    else if (st.isDirectory()) {
      out.set(path, { type: 'dir', ...rec });
      for (const name of await readdir(abs)) await visit(path === '' ? name : `${path}/${name}`, join(abs, name));
    }
  };
  await visit('', root);
  return out;
}
