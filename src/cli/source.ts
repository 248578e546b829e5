// Resolving a command-line SOURCE (an image folder, its .raw, or its .raw.mbr) to a disk.
import { stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { type BackupDisk, backupDisk } from '../catalog/backup-disk.js';
import { ImageLoader } from '../catalog/image-loader.js';
import { type ImageFolder, readImageFolder } from '../urbackup/storage.js';

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

export async function loadBackupDisk(source: string): Promise<BackupDisk> {
  const folder = await imageFolderOf(source);
  return backupDisk(await new ImageLoader().load(folder));
}
