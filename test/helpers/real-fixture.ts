// Genuine image backups written by UrBackup Server 2.5.33 (test/fixtures/*.tar.zst, see its README.md).
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { FixtureError } from './disk-builder.js';
import { run } from './run.js';
import { rawFileName } from './urbackup-storage.js';

/** The tarball, resolved from dist/test/helpers/ back to the source tree. */
export const REAL_FIXTURE = fileURLToPath(new URL('../../../test/fixtures/urbackup-2.5.33-mbr-ext4.tar.zst', import.meta.url));

export interface RealImage {
  readonly id: string;
  readonly client: string;
  readonly folder: string;
  /** The reference disk file name inside reference/. */
  readonly reference: string;
  readonly table: 'mbr';
  /** The `.mbr` partition_number. */
  readonly partnum: number;
  /** By partition number: fs name and path → sha256 of its files. */
  readonly partitions: Readonly<Record<string, { readonly fs: string; readonly files: Readonly<Record<string, string>> }>>;
}

export interface RealFixture {
  readonly storage: string;
  /** Holds the source disks (`reference_diskB_mbr.initial.img`, `.after_change.img`) when asked for. */
  readonly referenceDir?: string;
  readonly images: readonly RealImage[];
}

/**
 * Unpacks the genuine storage (`<client>/<image folder>/…`, sparse) into `storage`, and the
 * reference disks into `referenceDir` when given.
 */
export async function unpackRealFixture(storage: string, referenceDir?: string): Promise<RealFixture> {
  // Members are named ./storage/…, ./reference/…: strip "." and the top folder.
  await run('tar', ['--zstd', '-xSf', REAL_FIXTURE, '-C', storage, '--strip-components=2', './storage/']);
  if (referenceDir) await run('tar', ['--zstd', '-xSf', REAL_FIXTURE, '-C', referenceDir, '--strip-components=2', './reference/']);
  const index = JSON.parse(await run('tar', ['--zstd', '-xOf', REAL_FIXTURE, './images.json'])) as { images: RealImage[] };
  return { storage, referenceDir, images: index.images };
}

/** The `.raw` of a genuine image inside an unpacked storage. */
export function realRawPath(fx: RealFixture, img: RealImage): string {
  const m = /^(\d{6}-\d{4})_Image_(.+)$/.exec(img.folder);
  if (!m) throw new FixtureError(`${REAL_FIXTURE}: images.json folder ${img.folder} is not an image folder name`);
  return join(fx.storage, img.client, img.folder, rawFileName(m[1]!, m[2]!));
}
