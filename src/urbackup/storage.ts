// Finding image backups in an UrBackup storage folder (docs/urbackup-raw-format.md §1; the bare § numbers below are its sections).
import type { Dirent, Stats } from 'node:fs';
import { POOLED, type StorageCalls } from '../sys/storage-calls.js';
import { basename, dirname, join } from 'node:path';

/** `<YYMMDD-HHMM>_Image_<letter>` (§1.1). */
const IMAGE_FOLDER = /^(\d{6}-\d{4})_Image_(.+)$/;
/** Mount points, temporary ZFS links and migration leftovers next to image folders (§1.2). */
const NOT_AN_IMAGE_FOLDER = /_(mnt\d*|unit\d*|new|incomplete)$/;
/** `<storage>/urbackup` holds the database copy (§5.2), not a client. */
const DATABASE_FOLDER = 'urbackup';

export interface ImageFolder {
  readonly client: string;
  /** Folder name, e.g. 230520-0143_Image_C. */
  readonly folder: string;
  readonly dir: string;
  /** The folder's timestamp, server local time (§1.1). */
  readonly time: Date;
  readonly letter: string;
  readonly raw: string;
  readonly mbrPath: string;
  /** `.raw.sync` exists: the image finished and was synced (§4.1). */
  readonly complete: boolean;
}

export interface Discovery {
  readonly images: ImageFolder[];
  readonly warnings: string[];
}

export class StorageError extends Error {
  override name = 'StorageError';
}

/** `YYMMDD-HHMM` as local time. */
export function parseFolderTime(ts: string): Date {
  const n = (a: number, b: number): number => Number(ts.slice(a, b));
  return new Date(2000 + n(0, 2), n(2, 4) - 1, n(4, 6), n(7, 9), n(9, 11));
}

function isHidden(name: string): boolean {
  return name.startsWith('.');
}

function errnoText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err.code ?? err.message;
}

/**
 * Reads one image folder. Returns a reason string when the folder is not a usable image
 * backup (no `.raw`, a `.raw` that is not a regular file, no `.raw.mbr`).
 */
export async function readImageFolder(dir: string, client = basename(dirname(dir)), calls: StorageCalls = POOLED): Promise<ImageFolder | string> {
  const r = await readImageFiles(dir, client, calls);
  return typeof r === 'string' ? r : r.folder;
}

/** readImageFolder, with the `.raw`'s lstat (the catalog's loader needs it and need not ask again). */
async function readImageFiles(dir: string, client: string, calls: StorageCalls): Promise<{ folder: ImageFolder; rawStats: Stats } | string> {
  const folder = basename(dir);
  const m = IMAGE_FOLDER.exec(folder);
  if (!m) return `${dir}: not an UrBackup image folder (expected <YYMMDD-HHMM>_Image_<letter>)`;
  const [, ts, letter] = m as unknown as [string, string, string];
  let names: string[];
  try {
    names = await calls.readdir(dir);
  } catch (e) {
    return `${dir}: cannot read folder (${errnoText(e)})`;
  }
  // The file carries the folder's own timestamp and letter (§1.1); fall back to any .raw.
  const expected = `Image_${letter}_${ts}.raw`;
  const rawName = names.includes(expected) ? expected : names.find((n) => /^Image_.+_\d{6}-\d{4}\.raw$/.test(n));
  if (!rawName) return `${dir}: no Image_*.raw file in the image folder`;
  const raw = join(dir, rawName);
  const st = await calls.lstat(raw).catch((e: unknown) => errnoText(e));
  if (typeof st === 'string') return `${raw}: cannot stat (${st})`;
  if (st.isSymbolicLink()) return `${raw}: is a symbolic link; refused (image files must be regular files)`;
  if (!st.isFile()) return `${raw}: not a regular file`;
  const mbrPath = `${raw}.mbr`;
  if (!names.includes(`${rawName}.mbr`)) return `${mbrPath}: missing (every image has one; cannot place the volume on a disk)`;
  const complete = names.includes(`${rawName}.sync`);
  return { folder: { client, folder, dir, time: parseFolderTime(ts), letter, raw, mbrPath, complete }, rawStats: st };
}

/** One image folder found in a client folder, with its own mtime (a `.raw.sync` appearing changes it). */
export interface FoundImage {
  readonly dir: string;
  /** Undefined while the folder is not (yet) a usable image: no `.raw` or `.raw.mbr` so far. */
  readonly folder: ImageFolder | undefined;
  readonly mtimeMs: number;
  /** The folder's stat (through a symlink) and whether its entry is a symlink: its owner and real path without asking again. */
  readonly stats: Stats;
  readonly linked: boolean;
  /** The `.raw`'s lstat, when `folder` is set. */
  readonly rawStats: Stats | undefined;
}

/** What one client folder holds: its image folders, its mtime when read, and its problems. */
export interface ClientFolder {
  readonly images: FoundImage[];
  /** Undefined when the folder could not be read (or is not a folder). */
  readonly mtimeMs: number | undefined;
  readonly warnings: string[];
}

/** The client names of a storage: every entry that is not hidden and not the database folder. */
export async function readClientNames(storage: string, calls: StorageCalls = POOLED): Promise<{ names: string[]; mtimeMs: number }> {
  try {
    const st = await calls.stat(storage);
    if (!st.isDirectory()) throw new StorageError(`${storage}: not a directory`);
    const names = await calls.readdir(storage);
    return { names: names.filter((c) => !isHidden(c) && c !== DATABASE_FOLDER).sort(), mtimeMs: st.mtimeMs };
  } catch (e) {
    if (e instanceof StorageError) throw e;
    throw new StorageError(`${storage}: cannot read the storage folder (${errnoText(e)})`);
  }
}

/** Every image folder below `storage/<client>/`, skipping everything that is not an image backup. */
export async function discoverStorage(storage: string, calls: StorageCalls = POOLED): Promise<Discovery> {
  const { names } = await readClientNames(storage, calls);
  const perClient = await Promise.all(names.map((client) => readClient(storage, client, calls)));
  return { images: perClient.flatMap((c) => imagesOf(c)), warnings: perClient.flatMap((c) => c.warnings).sort() };
}

/** The image folders of one client folder; problems go to `warnings`. */
export async function discoverClient(storage: string, client: string, warnings: string[]): Promise<ImageFolder[]> {
  const c = await readClient(storage, client);
  warnings.push(...c.warnings);
  return imagesOf(c);
}

/** The usable image folders of a client folder. */
export function imagesOf(c: ClientFolder): ImageFolder[] {
  return c.images.flatMap((i) => (i.folder ? [i.folder] : []));
}

/** Reads one client folder: its image folders (sorted by name) and their mtimes. */
export async function readClient(storage: string, client: string, calls: StorageCalls = POOLED): Promise<ClientFolder> {
  const cdir = join(storage, client);
  const warnings: string[] = [];
  let entries: Dirent[];
  let mtimeMs: number;
  try {
    const st = await calls.stat(cdir);
    if (!st.isDirectory()) return { images: [], mtimeMs: undefined, warnings };
    mtimeMs = st.mtimeMs;
    entries = await calls.readdirTypes(cdir);
  } catch (e) {
    warnings.push(`${cdir}: skipped (${errnoText(e)})`);
    return { images: [], mtimeMs: undefined, warnings };
  }
  const found = await Promise.all(
    entries
      .filter((f) => !isHidden(f.name) && IMAGE_FOLDER.test(f.name) && !NOT_AN_IMAGE_FOLDER.test(f.name))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((f) => readImageEntry(join(cdir, f.name), client, f.isSymbolicLink(), warnings, calls)),
  );
  return { images: found.filter((x): x is FoundImage => x !== undefined), mtimeMs, warnings };
}

/** One entry of a client folder that looks like an image folder (a warning when it is not usable); undefined when it is not a folder. */
async function readImageEntry(dir: string, client: string, linked: boolean, warnings: string[], calls: StorageCalls): Promise<FoundImage | undefined> {
  // ZFS image folders are symlinks to dataset mount points (§1.3): follow them.
  const st = await calls.stat(dir).catch((e: unknown) => errnoText(e));
  if (typeof st === 'string') {
    warnings.push(`${dir}: skipped (${st})`);
    return undefined;
  }
  if (!st.isDirectory()) return undefined;
  const r = await readImageFiles(dir, client, calls);
  if (typeof r === 'string') warnings.push(r);
  const ok = typeof r !== 'string';
  return { dir, folder: ok ? r.folder : undefined, mtimeMs: st.mtimeMs, stats: st, linked, rawStats: ok ? r.rawStats : undefined };
}
