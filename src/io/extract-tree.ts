// Copies a file or folder out of a backup's volume (issue 22.4, docs/browsing.md §4): a file's
// Layout through materialize (aligned runs of the `.raw` cloned, the rest copied, holes kept), a
// decoded file's bytes written out; times and hard links kept; folders created under a temporary
// name and renamed once whole, like a file.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { link, lstat, lutimes, mkdir, open, rename, rm, symlink, utimes } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Bytes } from '../base/units.js';
import type { FileData, FsNode, VolumeFileSystem } from '../filesystem/volume-fs.js';
import { ReflinkError } from '../sys/reflink.js';
import { materialize, type ReflinkMode } from './materialize.js';

/** A bound on the depth of folders walked (a corrupt volume's folders may form a cycle). */
const MAX_DEPTH = 1024;
/** Bytes of a decoded file written per step. */
const DECODE_CHUNK: Bytes = 4 << 20;

export interface ExtractOptions {
  readonly reflink: ReflinkMode;
  readonly onProgress?: (done: Bytes, total: Bytes) => void;
}

export interface ExtractResult {
  files: number;
  folders: number;
  links: number;
  bytes: Bytes;
  clonedBytes: Bytes;
  copiedBytes: Bytes;
}

/** The node at `path` (`/`-separated, from the volume's root); an Error naming the part not found. */
export async function nodeAt(fs: VolumeFileSystem, path: string): Promise<FsNode> {
  let node = await fs.root();
  let at = '';
  for (const part of path.split('/').filter((p) => p !== '' && p !== '.')) {
    if (node.type !== 'dir') throw new Error(`${at}: not a folder`);
    at += `/${part}`;
    const e = await fs.lookup(node, part);
    if (!e) throw new Error(`${at}: no such file or folder in the volume`);
    node = e.node;
  }
  return node;
}

/** Extracts `node` (and, for a folder, everything in it) to `dest`, which must not exist for a folder. */
export async function extractNode(fs: VolumeFileSystem, node: FsNode, dest: string, opts: ExtractOptions): Promise<ExtractResult> {
  const job = new Extraction(fs, opts, node.type === 'dir' ? await totalBytes(fs, node, 0) : node.size);
  if (node.type !== 'dir') {
    await job.node(node, dest, 0);
    return job.result;
  }
  // rename(2) would replace an empty folder: a folder is never extracted over anything.
  const exists = (): Promise<void> =>
    lstat(dest).then(
      () => Promise.reject(new Error(`${dest}: it exists; extract a folder to a new name`)),
      (e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? undefined : Promise.reject(e)),
    );
  await exists();
  const tmp = join(dirname(dest), `.${basename(dest)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await job.node(node, tmp, 0);
    await exists();
    await rename(tmp, dest);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return job.result;
}

/** The bytes of every file under `dir`, for the progress bar. */
async function totalBytes(fs: VolumeFileSystem, dir: FsNode, depth: number): Promise<Bytes> {
  if (depth > MAX_DEPTH) throw new Error(`folders nested over ${MAX_DEPTH} deep (a cycle in a corrupt volume?)`);
  let sum = 0;
  for (const { node } of await fs.list(dir)) sum += node.type === 'dir' ? await totalBytes(fs, node, depth + 1) : node.type === 'file' ? node.size : 0;
  return sum;
}

class Extraction {
  readonly result: ExtractResult = { files: 0, folders: 0, links: 0, bytes: 0, clonedBytes: 0, copiedBytes: 0 };
  /** The first path each file with several links was written to. */
  private readonly written = new Map<number, string>();

  constructor(
    private readonly fs: VolumeFileSystem,
    private readonly opts: ExtractOptions,
    private readonly total: Bytes,
  ) {}

  async node(node: FsNode, dest: string, depth: number): Promise<void> {
    if (depth > MAX_DEPTH) throw new Error(`${dest}: folders nested over ${MAX_DEPTH} deep (a cycle in a corrupt volume?)`);
    if (node.type === 'dir') return this.folder(node, dest, depth);
    if (node.type === 'symlink') {
      await symlink(await this.fs.readlink(node), dest);
      await lutimes(dest, node.atimeMs / 1000, node.mtimeMs / 1000);
      return;
    }
    const first = this.written.get(node.id);
    if (first !== undefined) {
      await link(first, dest);
      this.result.links++;
      return;
    }
    await this.file(node, dest);
    if (node.nlink > 1) this.written.set(node.id, dest);
  }

  private async folder(dir: FsNode, dest: string, depth: number): Promise<void> {
    await mkdir(dest, { mode: 0o755 });
    this.result.folders++;
    for (const e of await this.fs.list(dir)) await this.node(e.node, join(dest, e.name), depth + 1);
    await utimes(dest, dir.atimeMs / 1000, dir.mtimeMs / 1000);
  }

  private async file(node: FsNode, dest: string): Promise<void> {
    const data = await this.fs.data(node);
    const base = this.result.bytes;
    const onProgress = (done: Bytes): void => this.opts.onProgress?.(base + done, this.total);
    if (data.kind === 'layout') {
      const r = await materialize(data.layout, dest, { reflink: this.opts.reflink, onProgress });
      this.result.clonedBytes += r.clonedBytes;
      this.result.copiedBytes += r.copiedBytes;
    } else {
      if (this.opts.reflink === 'always') throw new ReflinkError(`${dest}: its data is compressed in the volume: it can only be copied`);
      await writeDecoded(data, dest, onProgress);
      this.result.copiedBytes += data.size;
    }
    await utimes(dest, node.atimeMs / 1000, node.mtimeMs / 1000);
    this.result.files++;
    this.result.bytes += node.size;
    onProgress(node.size);
  }
}

/** A decoded file's bytes, written under a temporary name and renamed (zeros left as holes). */
async function writeDecoded(data: Extract<FileData, { kind: 'decoded' }>, dest: string, onProgress: (done: Bytes) => void): Promise<void> {
  const tmp = join(dirname(dest), `.${basename(dest)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const out = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  try {
    await out.truncate(data.size);
    for (let pos = 0; pos < data.size; pos += DECODE_CHUNK) {
      const bytes = await data.read(pos, Math.min(DECODE_CHUNK, data.size - pos));
      if (bytes.some((b) => b !== 0)) await out.write(bytes, 0, bytes.length, pos);
      onProgress(pos + bytes.length);
    }
    await out.sync();
    await out.close();
    await rename(tmp, dest);
  } catch (e) {
    await out.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw e;
  }
}
