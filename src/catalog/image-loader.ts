// Reads what a disk needs from one image folder: the parsed `.raw.mbr` and the volume's place
// in the `.raw`. Parsed results are kept while the files are unchanged, so rescans only stat.
import { constants, type Stats } from 'node:fs';
import { type FileHandle, lstat } from 'node:fs/promises';
import type { PartitionImage } from '../disk/assemble.js';
import type { SourceFile } from '../disk/layout.js';
import type { Bytes } from '../base/units.js';
import { openReadOnly } from '../io/read-only-open.js';
import { type MbrFile, MbrFileError, parseMbrFile } from '../urbackup/mbr-file.js';
import { RAW_HEAD_BYTES, RAW_VOLUME_OFFSET, mayHaveSyntheticGpt, RawFileError, volumeLength, wholeDiskLength } from '../urbackup/raw-file.js';
import type { ImageFolder } from '../urbackup/storage.js';
import type { Ownership } from './virtual-file.js';
import { ownershipOf } from './folder-access.js';

/** A v0/v1 `.raw.mbr` is well under 1 MiB; CRData caps any buffer at 100 MiB (docs/urbackup-raw-format.md §3.1). */
const MBR_FILE_MAX: Bytes = 1024 * 1024;
/** O_NONBLOCK keeps a FIFO from hanging us; O_NOFOLLOW refuses a symlinked file. */
const OPEN_FLAGS = constants.O_NONBLOCK | constants.O_NOFOLLOW;

/** What identifies a file's contents without reading it: device, inode, size, mtime. */
export interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
  readonly size: Bytes;
  readonly mtimeMs: number;
}

export interface IdentifiedSource extends SourceFile {
  readonly identity: FileIdentity;
}

export type LoadedImage = (
  | { readonly kind: 'partition'; readonly folder: ImageFolder; readonly image: PartitionImage & { raw: IdentifiedSource } }
  | { readonly kind: 'whole-disk'; readonly folder: ImageFolder; readonly raw: IdentifiedSource; readonly diskLength: Bytes; readonly mbr: MbrFile }
) & {
  /** Owner and mode of the `.raw.mbr` and the `.raw`, as of the last load (they may change without the contents). */
  readonly owners: readonly Ownership[];
};

/** The identity and the ownership of one stat. */
interface Stated {
  readonly identity: FileIdentity;
  readonly owner: Ownership;
}

function stated(st: Stats, path: string): Stated {
  return { identity: { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs }, owner: ownershipOf(st, path) };
}

function sameOwners(a: readonly Ownership[], b: readonly Ownership[]): boolean {
  return a.length === b.length && a.every((o, i) => o.uid === b[i]!.uid && o.gid === b[i]!.gid && o.mode === b[i]!.mode);
}

export class ImageLoadError extends Error {
  override name = 'ImageLoadError';
}

function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

async function openRegular(path: string): Promise<Stated & { fh: FileHandle }> {
  let fh: FileHandle;
  try {
    fh = await openReadOnly(path, OPEN_FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ImageLoadError(`${path}: cannot open (${code === 'ELOOP' ? 'is a symbolic link; refused' : code ?? e})`);
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    throw new ImageLoadError(`${path}: not a regular file`);
  }
  return { fh, ...stated(st, path) };
}

async function readAt(fh: FileHandle, length: number, position: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buf.subarray(0, done);
}

async function statRegular(path: string): Promise<Stated> {
  const st = await lstat(path).catch((e: unknown) => {
    throw new ImageLoadError(`${path}: cannot stat (${(e as NodeJS.ErrnoException).code ?? e})`);
  });
  if (!st.isFile()) throw new ImageLoadError(`${path}: not a regular file`);
  return stated(st, path);
}

async function readMbrFile(path: string): Promise<Stated & { mbr: MbrFile }> {
  const { fh, identity, owner } = await openRegular(path);
  try {
    // A whole-disk `.mbr` carries a ZIP of any size after its two bytes (docs/urbackup-raw-format.md §3.4): read just those.
    const len = identity.size > MBR_FILE_MAX ? 2 : identity.size;
    const buf = await readAt(fh, len, 0);
    if (identity.size > MBR_FILE_MAX && buf[1] !== 100) {
      throw new ImageLoadError(`${path}: ${identity.size} bytes is far too large for a .raw.mbr (corrupt?)`);
    }
    return { mbr: parseMbrFile(buf, path), identity, owner };
  } catch (e) {
    if (e instanceof MbrFileError) throw new ImageLoadError(e.message);
    throw e;
  } finally {
    await fh.close();
  }
}

/** Loads image folders, remembering results while the `.raw` and `.raw.mbr` are unchanged. */
export class ImageLoader {
  private readonly cache = new Map<string, { mbrId: FileIdentity; rawId: FileIdentity; loaded: LoadedImage }>();

  async load(folder: ImageFolder): Promise<LoadedImage> {
    const cached = this.cache.get(folder.raw);
    if (cached) {
      const [rawNow, mbrNow] = await Promise.all([statRegular(folder.raw), statRegular(folder.mbrPath)]);
      if (sameIdentity(cached.rawId, rawNow.identity) && sameIdentity(cached.mbrId, mbrNow.identity)) {
        const owners = [mbrNow.owner, rawNow.owner];
        if (sameOwners(cached.loaded.owners, owners)) return cached.loaded;
        // Same contents, new owner or mode (chmod, chown): a new image, so the disk's access is redone.
        const loaded = { ...cached.loaded, owners };
        this.cache.set(folder.raw, { ...cached, loaded });
        return loaded;
      }
    }
    this.cache.delete(folder.raw);
    const { mbr, identity: mbrId, owner: mbrOwner } = await readMbrFile(folder.mbrPath);
    const { fh, identity: rawId, owner: rawOwner } = await openRegular(folder.raw);
    try {
      const raw: IdentifiedSource = { path: folder.raw, identity: rawId };
      const owners = [mbrOwner, rawOwner];
      let loaded: LoadedImage;
      if (mbr.kind === 'whole-disk') {
        loaded = { kind: 'whole-disk', folder, raw, diskLength: wholeDiskLength(folder.raw, rawId.size), mbr, owners };
      } else {
        const head = mayHaveSyntheticGpt(rawId.size) ? await readAt(fh, RAW_HEAD_BYTES, 0) : undefined;
        loaded = { kind: 'partition', folder, image: { mbr, mbrPath: folder.mbrPath, raw, volumeOffset: RAW_VOLUME_OFFSET, volumeLength: volumeLength(folder.raw, rawId.size, head) }, owners };
      }
      this.cache.set(folder.raw, { mbrId, rawId, loaded });
      return loaded;
    } catch (e) {
      if (e instanceof RawFileError) throw new ImageLoadError(e.message);
      throw e;
    } finally {
      await fh.close();
    }
  }

  /** Drops entries of images no longer present. */
  retain(rawPaths: ReadonlySet<string>): void {
    for (const k of this.cache.keys()) if (!rawPaths.has(k)) this.cache.delete(k);
  }
}
