// Walks a VolumeFileSystem into one record per path (type, size, times, link target, content
// hash), so a reader can be compared whole with an independent reader of the same volume.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { Layout } from '../../src/disk/layout.js';
import type { FileData, FsNode, VolumeFileSystem } from '../../src/filesystem/volume-fs.js';

export interface WalkedNode {
  readonly type: 'file' | 'dir' | 'symlink';
  readonly size: number;
  readonly mtimeMs: number;
  readonly id: number;
  readonly nlink: number;
  readonly target?: string;
  readonly sha256?: string;
  readonly dosAttributes?: number;
}

/** Pieces of at most this size are read and hashed at a time. */
const PIECE = 4 * 1024 * 1024;
const ZEROS = Buffer.alloc(PIECE);

/** The SHA-256 of a Layout's bytes, read from its backing files (an independent little reader for tests). */
export async function layoutSha256(layout: Layout): Promise<string> {
  const h = createHash('sha256');
  const handles = new Map<string, Awaited<ReturnType<typeof open>>>();
  try {
    for (const s of layout.segments) {
      if (s.kind === 'bytes') h.update(s.data);
      for (let done = 0; s.kind !== 'bytes' && done < s.length; done += PIECE) {
        const n = Math.min(PIECE, s.length - done);
        if (s.kind === 'zero') {
          h.update(ZEROS.subarray(0, n));
          continue;
        }
        let fh = handles.get(s.source.path);
        if (!fh) handles.set(s.source.path, (fh = await open(s.source.path, 'r')));
        const buf = Buffer.alloc(n);
        const { bytesRead } = await fh.read(buf, 0, n, s.offset + done);
        if (bytesRead !== n) throw new Error(`short read of ${s.source.path} at ${s.offset + done}`);
        h.update(buf);
      }
    }
  } finally {
    for (const fh of handles.values()) await fh.close();
  }
  return h.digest('hex');
}

export async function fileDataSha256(data: FileData): Promise<string> {
  if (data.kind === 'layout') return layoutSha256(data.layout);
  const h = createHash('sha256');
  for (let pos = 0; pos < data.size; pos += PIECE) h.update(await data.read(pos, Math.min(PIECE, data.size - pos)));
  return h.digest('hex');
}

/** Every path below the root ('' is the root itself) with what the reader says of it. */
export async function walkReader(fs: VolumeFileSystem, opts: { contents?: boolean } = {}): Promise<Map<string, WalkedNode>> {
  const out = new Map<string, WalkedNode>();
  const visit = async (path: string, node: FsNode): Promise<void> => {
    const rec: WalkedNode = { type: node.type, size: node.size, mtimeMs: node.mtimeMs, id: node.id, nlink: node.nlink, ...(node.dosAttributes !== undefined ? { dosAttributes: node.dosAttributes } : {}) };
    if (node.type === 'symlink') out.set(path, { ...rec, target: await fs.readlink(node) });
    else if (node.type === 'file') out.set(path, opts.contents === false ? rec : { ...rec, sha256: await fileDataSha256(await fs.data(node)) });
    else {
      out.set(path, rec);
      for (const e of await fs.list(node)) await visit(path === '' ? e.name : `${path}/${e.name}`, e.node);
    }
  };
  await visit('', await fs.root());
  return out;
}
