// Expensive Debian fixtures (a debootstrap tree, a kernel) kept between test runs under
// /var/cache/synthvhd-test/, one folder per set of inputs, rebuilt when missing.
import { createHash } from 'node:crypto';
import { access, mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

export const TEST_CACHE = '/var/cache/synthvhd-test';

/**
 * `<cache>/<name>-<hash of key>`, built by `build` into a temporary sibling and renamed when
 * complete, so an interrupted build is never taken for a finished one.
 */
export async function cachedDir(name: string, key: readonly string[], build: (dir: string) => Promise<void>): Promise<string> {
  const dir = join(TEST_CACHE, `${name}-${createHash('sha256').update(key.join('\n')).digest('hex').slice(0, 16)}`);
  if (await access(dir).then(() => true, () => false)) return dir;
  const tmp = `${dir}.partial-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    await build(tmp);
    // Another suite may have finished the same folder meanwhile: keep the first.
    await rename(tmp, dir).catch(async () => rm(tmp, { recursive: true, force: true }));
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  return dir;
}
