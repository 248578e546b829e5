// Reads what a disk needs from one image folder: the parsed `.raw.mbr` and the volume's place
// in the `.raw`. Parsed results are kept while the files are unchanged, so rescans only stat.
import { constants, type Stats } from 'node:fs';
import { hash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type { PartitionImage } from '../disk/assemble.js';
import type { SourceFile } from '../disk/layout.js';
import type { Bytes } from '../base/units.js';
import { type MbrFile, type PartitionedMbrFile, type Placed, parseMbrFile } from '../urbackup/mbr-file.js';
import { RAW_HEAD_BYTES, RAW_VOLUME_OFFSET, mayHaveSyntheticGpt, volumeLength, wholeDiskLength } from '../urbackup/raw-file.js';
import type { ImageFolder } from '../urbackup/storage.js';
import { ownershipOf, sameOwners } from './folder-access.js';
import { type FileIdentity, identityOf, sameIdentity } from '../sys/file-identity.js';
import { POOLED, type StorageCalls } from '../sys/storage-calls.js';
import type { Ownership } from './virtual-file.js';

/** A v0/v1 `.raw.mbr` is well under 1 MiB; CRData caps any buffer at 100 MiB (docs/urbackup-raw-format.md §3.1). */
const MBR_FILE_MAX: Bytes = 1024 * 1024;
/** O_NONBLOCK keeps a FIFO from hanging us; O_NOFOLLOW refuses a symlinked file. */
const OPEN_FLAGS = constants.O_NONBLOCK | constants.O_NOFOLLOW;

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
  return { identity: identityOf(st), owner: ownershipOf(st, path) };
}

async function openRegular(path: string, calls: StorageCalls): Promise<Stated & { fd: number }> {
  let fd: number;
  try {
    fd = await calls.openReadOnlyFd(path, OPEN_FLAGS);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(`${path}: cannot open (${code === 'ELOOP' ? 'is a symbolic link; refused' : code ?? e})`);
  }
  const st = await calls.fstat(fd).catch(async (e: unknown) => {
    await calls.close(fd);
    throw e;
  });
  if (!st.isFile()) {
    await calls.close(fd);
    throw new Error(`${path}: not a regular file`);
  }
  return { fd, ...stated(st, path) };
}

/** Reads `length` bytes at `position` into `buf` (unzeroed: only the bytes read are used); fewer at the end of the file. */
async function readAt(fd: number, length: number, position: number, calls: StorageCalls, buf: Buffer = Buffer.allocUnsafe(length)): Promise<Buffer> {
  let done = 0;
  while (done < length) {
    const bytesRead = await calls.read(fd, buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buf.subarray(0, done);
}

async function readable(path: string, calls: StorageCalls): Promise<void> {
  await calls.access(path, constants.R_OK).catch((e: unknown) => {
    throw new Error(`${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? e})`);
  });
}

async function readHead(path: string, calls: StorageCalls): Promise<Buffer> {
  const { fd } = await openRegular(path, calls);
  try {
    return await readAt(fd, RAW_HEAD_BYTES, 0, calls);
  } finally {
    await calls.close(fd);
  }
}

async function statRegular(path: string, calls: StorageCalls): Promise<Stated> {
  const st = await calls.lstat(path).catch((e: unknown) => {
    throw new Error(`${path}: cannot stat (${(e as NodeJS.ErrnoException).code ?? e})`);
  });
  if (!st.isFile()) throw new Error(`${path}: not a regular file`);
  return stated(st, path);
}

/**
 * One copy of every distinct byte string of the parsed `.raw.mbr` files: a GPT `.raw.mbr` is
 * 33 KiB (two 16 KiB tables), kept for the disk's layout, and the images of one disk share
 * their tables (every incremental of a machine, and the backup table is the primary's copy).
 * 10 000 backups kept 330 MiB of them before; now each distinct table is kept once.
 */
class ByteInterner {
  private readonly byCrc = new Map<string, WeakRef<Buffer>>();
  private readonly gone = new FinalizationRegistry<string>((key) => {
    if (this.byCrc.get(key)?.deref() === undefined) this.byCrc.delete(key);
  });

  intern(data: Buffer): Buffer {
    const key = `${crc32(data)}:${data.length}`;
    const have = this.byCrc.get(key)?.deref();
    if (have?.equals(data)) return have;
    // A copy: `data` is a view into the whole file's buffer, which it would keep alive.
    const own = Buffer.from(data);
    // A CRC collision with other bytes keeps the first string shared; this one stays unshared.
    if (!have) {
      this.byCrc.set(key, new WeakRef(own));
      this.gone.register(own, key);
    }
    return own;
  }

  placed(p: Placed): Placed {
    return { pos: p.pos, data: this.intern(p.data) };
  }

  mbrFile(m: PartitionedMbrFile): PartitionedMbrFile {
    const g = m.gpt;
    return {
      ...m,
      mbr: this.intern(m.mbr),
      ...(g && { gpt: { header: this.placed(g.header), table: this.placed(g.table), backupHeader: this.placed(g.backupHeader), backupTable: this.placed(g.backupTable) } }),
      ...(m.extra && { extra: this.placed(m.extra) }),
    };
  }
}

const bytes = new ByteInterner();

/**
 * One parse per distinct `.raw.mbr`: every backup of a machine's partition carries the same file
 * (its table does not change between incrementals), so a storage of 10 000 backups holds a few
 * hundred distinct ones. Files are matched by a SHA-256 of their bytes (a client writes these
 * files, so a weaker hash could be made to collide); parsing is pure, so a twin's parse is the
 * file's own. Errors are not kept: they name their file.
 *
 * Before the hash, the bytes are compared with the last few files parsed: a scan reads a
 * client's backups in order, and each is mostly its predecessor's twin: a comparison that
 * matches costs far less than a hash (docs/architecture.md §6).
 */
class MbrTwins {
  private readonly byHash = new Map<string, WeakRef<MbrFile>>();
  private readonly gone = new FinalizationRegistry<string>((key) => {
    if (this.byHash.get(key)?.deref() === undefined) this.byHash.delete(key);
  });
  /** Most recent first; their own copies of the bytes (the caller's buffer is reused). */
  private readonly recent: { readonly bytes: Buffer; readonly mbr: MbrFile }[] = [];

  parse(buf: Buffer, path: string): MbrFile {
    const i = this.recent.findIndex((r) => r.bytes.equals(buf));
    if (i >= 0) {
      const [r] = this.recent.splice(i, 1);
      this.recent.unshift(r!);
      return r!.mbr;
    }
    const key = hash('sha256', buf, 'base64');
    let mbr = this.byHash.get(key)?.deref();
    if (!mbr) {
      const parsed = parseMbrFile(buf, path);
      mbr = parsed.kind === 'partition' ? bytes.mbrFile(parsed) : parsed;
      this.byHash.set(key, new WeakRef(mbr));
      this.gone.register(mbr, key);
    }
    this.recent.unshift({ bytes: Buffer.from(buf), mbr });
    if (this.recent.length > RECENT_KEPT) this.recent.pop();
    return mbr;
  }
}

/** Files compared before hashing: a machine's partitions (C:, ESP, SYSVOL, D:, ...) interleave in a client's folder. */
const RECENT_KEPT = 8;

const twins = new MbrTwins();

/**
 * Read buffers of `.raw.mbr` files, reused: the parse copies out what it keeps. A scan of
 * 10 000 backups read 344 MB of them; a 34 KiB allocation each left the process's heap
 * fragmented (serve's peak RSS). Loads run at most LOAD_CONCURRENCY at a time (disk-scan.ts).
 */
const SCRATCH_BYTES = 64 * 1024;
const SCRATCH_KEPT = 32;
const scratch: Buffer[] = [];

async function readMbrFile(path: string, calls: StorageCalls): Promise<Stated & { mbr: MbrFile }> {
  const { fd, identity, owner } = await openRegular(path, calls);
  // A whole-disk `.mbr` carries a ZIP of any size after its two bytes (docs/urbackup-raw-format.md §3.4): read just those.
  const len = identity.size > MBR_FILE_MAX ? 2 : identity.size;
  const own = len <= SCRATCH_BYTES ? (scratch.pop() ?? Buffer.allocUnsafeSlow(SCRATCH_BYTES)) : undefined;
  try {
    const buf = await readAt(fd, len, 0, calls, own?.subarray(0, len));
    if (identity.size > MBR_FILE_MAX && buf[1] !== 100) {
      throw new Error(`${path}: ${identity.size} bytes is far too large for a .raw.mbr (corrupt?)`);
    }
    return { mbr: twins.parse(buf, path), identity, owner };
  } finally {
    if (own && scratch.length < SCRATCH_KEPT) scratch.push(own);
    await calls.close(fd);
  }
}

/** Loads image folders, remembering results while the `.raw` and `.raw.mbr` are unchanged. */
export class ImageLoader {
  private readonly cache = new Map<string, { mbrId: FileIdentity; rawId: FileIdentity; loaded: LoadedImage }>();

  /** `rawStats`: the `.raw`'s lstat, when the caller just made one. */
  async load(folder: ImageFolder, rawStats?: Stats, calls: StorageCalls = POOLED): Promise<LoadedImage> {
    const rawStat = (): Promise<Stated> => (rawStats?.isFile() ? Promise.resolve(stated(rawStats, folder.raw)) : statRegular(folder.raw, calls));
    const cached = this.cache.get(folder.raw);
    if (cached) {
      const [rawNow, mbrNow] = await Promise.all([rawStat(), statRegular(folder.mbrPath, calls)]);
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
    // The `.raw` is not opened (only a head over 2 TiB is read): access(2) says whether it could be.
    const [{ mbr, identity: mbrId, owner: mbrOwner }, { identity: rawId, owner: rawOwner }] = await Promise.all([readMbrFile(folder.mbrPath, calls), rawStat(), readable(folder.raw, calls)]);
    const raw: IdentifiedSource = { path: folder.raw, identity: rawId };
    const owners = [mbrOwner, rawOwner];
    let loaded: LoadedImage;
    if (mbr.kind === 'whole-disk') {
      loaded = { kind: 'whole-disk', folder, raw, diskLength: wholeDiskLength(folder.raw, rawId.size), mbr, owners };
    } else {
      // Only a `.raw` over 2 TiB is read (its head may hold a synthetic GPT); the others are only stat'ed.
      const head = mayHaveSyntheticGpt(rawId.size) ? await readHead(folder.raw, calls) : undefined;
      loaded = { kind: 'partition', folder, image: { mbr, mbrPath: folder.mbrPath, raw, volumeOffset: RAW_VOLUME_OFFSET, volumeLength: volumeLength(folder.raw, rawId.size, head) }, owners };
    }
    this.cache.set(folder.raw, { mbrId, rawId, loaded });
    return loaded;
  }

  /** Drops entries of images no longer present. */
  retain(rawPaths: ReadonlySet<string>): void {
    for (const k of this.cache.keys()) if (!rawPaths.has(k)) this.cache.delete(k);
  }

  /** Drops the entry of one image (its folder went away). */
  forget(rawPath: string): void {
    this.cache.delete(rawPath);
  }
}
