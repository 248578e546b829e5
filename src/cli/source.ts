// Resolving a command-line SOURCE (an image folder, its .raw, or its .raw.mbr) to a disk.
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { BackupDisk } from '../catalog/backup-disk.js';
import { ImageLoader } from '../catalog/image-loader.js';
import { disksOf, loadImages } from '../catalog/disk-scan.js';
import { folderKey, isPartnerLetter } from '../disk/partners.js';
import { discoverClient, type ImageFolder, readImageFolder } from '../urbackup/storage.js';
import { databaseFor } from './database-option.js';

export async function imageFolderOf(source: string): Promise<ImageFolder> {
  const path = resolve(source);
  const st = await stat(path).catch((e: NodeJS.ErrnoException) => {
    throw new Error(`${path}: ${e.code === 'ENOENT' ? 'no such file or folder' : `cannot stat (${e.code})`}`);
  });
  const dir = st.isDirectory() ? path : dirname(path);
  const folder = await readImageFolder(dir);
  if (typeof folder === 'string') throw new Error(folder);
  return folder;
}

/**
 * The disk of one image folder, as `serve` shows it: with its SYSVOL/ESP partners from the same
 * client folder unless `partners` is false.
 */
export async function loadBackupDisk(source: string, opts: { partners?: boolean; uniqueIds?: boolean; database?: string; warnings?: string[] } = {}): Promise<BackupDisk> {
  const folder = await imageFolderOf(source);
  const warnings = opts.warnings ?? [];
  const loader = new ImageLoader();
  const main = await loader.load(folder);
  // A SYSVOL/ESP folder named on its own is built on its own.
  const partners = opts.partners !== false && !isPartnerLetter(folder.letter);
  const storage = dirname(dirname(folder.dir));
  const siblings = partners ? (await discoverClient(storage, folder.client, [])).filter((f) => f.complete && f.dir !== folder.dir) : [];
  const others = await loadImages(siblings, loader, []);
  const database = await databaseFor(storage, opts.database);
  const disk = (await disksOf([main, ...others], { partners, uniqueIds: opts.uniqueIds === true, ...(database && { database }) }, warnings)).find((d) => folderKey(d.images[0]!) === folderKey(folder));
  if (!disk) throw new Error(warnings.join('; ') || `${folder.dir}: no disk could be assembled`);
  return disk;
}
