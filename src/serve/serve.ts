// `serve`: mount the virtual tree and keep it in step with the storage until closed.
import { DiskCache } from './disk-cache.js';
import { FdCache } from './fd-cache.js';
import { VirtualFs } from './filesystem.js';
import { type Mounted, mount } from '../fuse/mount.js';
import { hasCachestat } from '../io/cached-read.js';
import { FileOpener, type ServeMode } from './open-file.js';
import type { Catalog, VirtualFile } from '../catalog/virtual-file.js';
import type { AccessPolicy } from './access.js';

/** How often the catalog is scanned again; the issue asks for new backups within 5 s. */
export const DEFAULT_RESCAN_MS = 2000;

export class ServeError extends Error {
  override name = 'ServeError';
}

export interface ServeOptions {
  catalog: Catalog;
  mount: string;
  mode: ServeMode;
  /** Where reflink mode builds disk files; needed for 'reflink', optional for 'auto'. */
  cacheDir?: string;
  allowOther: boolean;
  /** Who may read what (default: as the storage allows; see access.ts). */
  access?: AccessPolicy;
  rescanMs?: number;
  log: (line: string) => void;
}

export interface Server {
  readonly mountpoint: string;
  /** Unmounts (lazily when files are still open) and stops rescanning. */
  close(): Promise<void>;
}

function sourcePaths(files: Iterable<VirtualFile>): Set<string> {
  const out = new Set<string>();
  for (const f of files) for (const s of f.sources) out.add(s.path);
  return out;
}

/** Mounts the catalog's files at opts.mount and rescans every rescanMs until close(). */
export async function serve(opts: ServeOptions): Promise<Server> {
  const { catalog, log } = opts;
  if (opts.mode === 'reflink' && !opts.cacheDir) throw new ServeError('reflink mode needs a cache directory (--cache-dir)');
  const fds = new FdCache();
  const cache = opts.cacheDir && opts.mode !== 'passthrough' ? await DiskCache.open(opts.cacheDir, fds) : undefined;
  if (opts.mode === 'auto' && !cache) log('auto mode without a cache directory: serving in passthrough');
  if (!hasCachestat()) log('the kernel has no cachestat (Linux 6.5 brought it): large cold reads go through the page cache instead of O_DIRECT');
  const vfs = new VirtualFs(new FileOpener(opts.mode, fds, cache, log), log, opts.access);

  let logged = new Set<string>();
  /** Logs what is new since the last scan, so an unchanged problem is one line, not one per scan. */
  const report = (lines: readonly string[]): void => {
    for (const line of lines) if (!logged.has(line)) log(line);
    logged = new Set(lines);
  };

  let mounted: Mounted | undefined;
  const rescan = async (): Promise<void> => {
    const before = vfs.files();
    const { files, warnings } = await catalog.scan();
    const update = vfs.update(files);
    report([...warnings, ...update.warnings]);
    for (const s of update.stale) {
      if (s.changed) log(`${s.changed.key}: its contents changed (a new backup under the same name, or its SYSVOL/ESP regrouped); shown as a new file, open readers keep the old one`);
      mounted?.invalidateEntry(s.parent, s.name);
    }
    for (const ino of update.attrsChanged) mounted?.invalidateAttributes(ino);
    const after = vfs.files();
    const added = [...after.keys()].filter((k) => !before.has(k)).length;
    const removed = [...before.keys()].filter((k) => !after.has(k)).length;
    if (added || removed) log(`${after.size} files (${added} new, ${removed} gone)`);
    // A path that comes back later may be a different file: do not reuse its old descriptor.
    const live = sourcePaths(after.values());
    for (const path of sourcePaths(before.values())) if (!live.has(path)) fds.evict(path);
    if (cache) for (const key of await cache.prune(new Set(after.keys()))) log(`${key}: removed its cache file (backup gone)`);
  };

  await rescan();
  mounted = await mount(opts.mount, vfs, { allowOther: opts.allowOther }, log);
  log(`serving ${vfs.files().size} files at ${mounted.mountpoint} (${opts.mode}${cache ? `, cache ${cache.dir}` : ''})`);

  let timer: NodeJS.Timeout | undefined;
  let scanning: Promise<void> = Promise.resolve();
  const schedule = (): void => {
    timer = setTimeout(() => {
      scanning = rescan()
        .catch((e: Error) => report([`rescan failed, keeping the previous tree: ${e.message}`]))
        .finally(() => {
          if (timer) schedule();
        });
    }, opts.rescanMs ?? DEFAULT_RESCAN_MS);
  };
  schedule();

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      clearTimeout(timer);
      timer = undefined;
      await scanning;
      await mounted.unmount();
      vfs.releaseAll();
      fds.clear();
    })());
  return { mountpoint: mounted.mountpoint, close };
}
