// Reflink mode's cache: one materialized disk file per virtual file, reused while its sources are unchanged.
import { chmod, mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { materialize } from '../io/materialize.js';
import { type FileIdentity, identityOf } from '../sys/file-identity.js';
import type { FdCache } from './fd-cache.js';
import type { VirtualFile } from '../catalog/virtual-file.js';

/** Sidecar next to each cache file: which sources, in which state, it was built from. */
const SIDECAR_SUFFIX = '.sources.json';

type SourceStamp = { readonly path: string } & FileIdentity;

interface Sidecar {
  readonly key: string;
  readonly size: number;
  readonly sources: readonly SourceStamp[];
  /** False while the build runs: a crash leaves an entry that prune still knows how to remove. */
  readonly complete: boolean;
}

async function stampsOf(file: VirtualFile): Promise<SourceStamp[]> {
  return Promise.all(
    file.sources.map(async ({ path }) => {
      const s = await stat(path);
      return { path, ...identityOf(s) };
    }),
  );
}

async function readSidecar(path: string): Promise<Sidecar | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as Sidecar;
  } catch {
    return undefined;
  }
}

async function removeQuietly(path: string): Promise<void> {
  await unlink(path).catch(() => undefined);
}

/** Where a built disk is, or why there is none (the caller serves that file in passthrough). */
export type CacheResult = { readonly path: string } | { readonly fallback: string };

export class DiskCache {
  private readonly building = new Map<string, Promise<CacheResult>>();

  private constructor(readonly dir: string, private readonly fds: FdCache) {}

  /** Opens (creating it 0700) the cache directory. */
  static async open(dir: string, fds: FdCache): Promise<DiskCache> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    return new DiskCache(dir, fds);
  }

  /** The cache file of a virtual file: its key, escaped into one file name. */
  pathOf(key: string): string {
    return join(this.dir, encodeURIComponent(key));
  }

  /**
   * The built disk of `file`, building it first unless a build from the same source state
   * exists. Concurrent calls for one file share one build. Throws when the layout is bad.
   */
  get(file: VirtualFile): Promise<CacheResult> {
    let pending = this.building.get(file.key);
    if (!pending) {
      pending = this.reuseOrBuild(file).finally(() => this.building.delete(file.key));
      this.building.set(file.key, pending);
    }
    return pending;
  }

  /** The built disk of `file` if one from the current source state exists; never builds. */
  async ready(file: VirtualFile): Promise<string | undefined> {
    if (this.building.has(file.key)) return undefined;
    const { dest, want } = await this.wanted(file);
    return (await this.isBuilt(dest, want)) ? dest : undefined;
  }

  private async wanted(file: VirtualFile): Promise<{ dest: string; want: Sidecar }> {
    return { dest: this.pathOf(file.key), want: { key: file.key, size: file.computeSize(), sources: await stampsOf(file), complete: true } };
  }

  private async isBuilt(dest: string, want: Sidecar): Promise<boolean> {
    const [have, built] = await Promise.all([readSidecar(dest + SIDECAR_SUFFIX), stat(dest).catch(() => undefined)]);
    return have !== undefined && built?.size === want.size && JSON.stringify(have) === JSON.stringify(want);
  }

  private async reuseOrBuild(file: VirtualFile): Promise<CacheResult> {
    const { dest, want } = await this.wanted(file);
    const sidecarPath = dest + SIDECAR_SUFFIX;
    // Built disks are root's alone: who may read one is decided on the virtual file (access.ts).
    if (await this.isBuilt(dest, want)) return { path: await chmodCacheFile(dest) };

    const layout = file.layout();
    try {
      // Sidecar writes can fail too (cache filesystem full): any failure means passthrough, nothing left behind.
      await writeSidecar(sidecarPath, { ...want, complete: false });
      await materialize(layout, dest, { reflink: 'always' });
      await chmodCacheFile(dest);
      await writeSidecar(sidecarPath, want);
    } catch (e) {
      await removeQuietly(dest);
      await removeQuietly(sidecarPath);
      await removeQuietly(`${sidecarPath}.tmp`);
      return { fallback: (e as Error).message };
    } finally {
      // The path now names another file (or none): cached descriptors of the old one must go.
      this.fds.evict(dest);
    }
    return { path: dest };
  }

  /** Removes the cache files of backups that are gone (keys not in `current`). */
  async prune(current: ReadonlySet<string>): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await readdir(this.dir)) {
      if (!name.endsWith(SIDECAR_SUFFIX)) continue;
      const sidecarPath = join(this.dir, name);
      const key = (await readSidecar(sidecarPath))?.key;
      if (key !== undefined && (current.has(key) || this.building.has(key))) continue;
      const dest = sidecarPath.slice(0, -SIDECAR_SUFFIX.length);
      await removeQuietly(dest);
      await removeQuietly(sidecarPath);
      this.fds.evict(dest);
      removed.push(key ?? dest);
    }
    return removed;
  }
}

/** Cache files are 0600 (materialize makes build's outputs 0644; the cache folder is 0700 anyway). */
async function chmodCacheFile(path: string): Promise<string> {
  await chmod(path, 0o600);
  return path;
}

async function writeSidecar(path: string, sidecar: Sidecar): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, JSON.stringify(sidecar), { mode: 0o600 });
  await rename(tmp, path);
}
