// Whether `serve --mode reflink|auto` can clone disks from the storage into the cache folder.
// The storage is only ever read: the probe clone goes into the cache folder.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { canReflink, fsTypeName } from '../sys/reflink.js';
import { type Finding, fail, ok, warn } from './finding.js';

/** Filesystems with FICLONERANGE between files (docs/development.md §7, reflink mode). */
const REFLINK_FILESYSTEMS = new Set(['btrfs', 'xfs', 'zfs']);

async function subdirs(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => join(dir, e.name));
}

/** The first `<client>/<image folder>/*.raw` of the storage (docs/urbackup-raw-format.md §1.1), if any. */
export async function findRaw(storage: string): Promise<string | undefined> {
  for (const client of await subdirs(storage)) {
    for (const folder of await subdirs(client)) {
      const raw = (await readdir(folder).catch(() => [])).find((n) => n.endsWith('.raw'));
      if (raw) return join(folder, raw);
    }
  }
  return undefined;
}

async function isDir(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false);
}

export async function checkReflink(storage: string | undefined, cacheDir: string | undefined): Promise<Finding[]> {
  if (!storage) {
    return cacheDir ? [warn('--cache-dir without --storage: nothing to clone from', 'pass --storage too')] : [];
  }
  if (!(await isDir(storage))) return [fail(`storage ${storage} is not a readable folder`, 'pass the UrBackup backup folder (its "Backup storage path")')];
  const storageFs = fsTypeName(storage);
  const out: Finding[] = [];
  const raw = await findRaw(storage);
  if (!raw) out.push(warn(`storage ${storage} (${storageFs}) holds no <client>/<image>/*.raw`, 'check the path; serve will show nothing until an image backup exists'));
  else out.push(ok(`storage ${storage} is on ${storageFs} and holds image backups (e.g. ${raw})`));
  if (!cacheDir) {
    out.push(
      REFLINK_FILESYSTEMS.has(storageFs)
        ? ok(`no --cache-dir: serve reads the .raw files directly (passthrough); for reflink mode pass a --cache-dir on this ${storageFs} filesystem`)
        : ok(`storage is on ${storageFs}, which cannot reflink: serve uses passthrough, which needs no cache`),
    );
    return out;
  }
  if (!(await isDir(cacheDir))) return [...out, fail(`cache folder ${cacheDir} does not exist`, `mkdir -p ${cacheDir} (on the storage's filesystem)`)];
  const cacheFs = fsTypeName(cacheDir);
  if (!raw) return [...out, warn(`cannot test a clone into ${cacheDir} (${cacheFs}): no .raw in the storage`, 'run doctor again once a backup exists')];
  try {
    if (await canReflink(raw, cacheDir)) out.push(ok(`cache ${cacheDir} (${cacheFs}) can clone from the storage: reflink mode works`));
    else out.push(warn(`cache ${cacheDir} (${cacheFs}) cannot clone from the storage (${storageFs}): auto mode serves passthrough`, `put the cache folder on the storage's filesystem${REFLINK_FILESYSTEMS.has(storageFs) ? '' : ' (btrfs, XFS with reflink=1 or ZFS >= 2.2)'}`));
  } catch (e) {
    out.push(fail(`cannot test a clone into ${cacheDir}: ${(e as Error).message}`, 'make the cache folder writable by the user that runs serve'));
  }
  return out;
}
