// Fixtures of the boot tests that cost seconds to make (GRUB images, machine disks) are kept under
// /var/cache/synthvhd-test/, one folder per fixture named after a hash of everything it is made
// from, so a changed input (a GRUB package update, an edited config) makes a new one.
import { createHash } from 'node:crypto';
import { access, mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

export const TEST_CACHE = process.env['SYNTHVHD_TEST_CACHE'] ?? '/var/cache/synthvhd-test';

/** A short, stable hash of the inputs (strings or bytes, in order). */
export function cacheKey(inputs: readonly (string | Buffer)[]): string {
  const h = createHash('sha256');
  for (const i of inputs) h.update(createHash('sha256').update(i).digest());
  return h.digest('hex').slice(0, 16);
}

/**
 * The folder `<cache>/<name>-<key>`, made by `make(dir)` when missing. `make` fills a private
 * temporary folder that is renamed into place only when it succeeded, so a half-made fixture never
 * has the final name, and two test files making the same fixture at once keep the first one.
 */
export async function cachedFolder(name: string, key: string, make: (dir: string) => Promise<void>): Promise<string> {
  const root = join(TEST_CACHE, 'boot');
  const dir = join(root, `${name}-${key}`);
  if (await access(dir).then(() => true, () => false)) return dir;
  await mkdir(root, { recursive: true });
  const tmp = await mkdtemp(join(root, `.${name}-`));
  try {
    await make(tmp);
    await rename(tmp, dir).catch(async (e: NodeJS.ErrnoException) => {
      // ENOTEMPTY/EEXIST: another run made it meanwhile; theirs is as good.
      if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e;
    });
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return dir;
}
