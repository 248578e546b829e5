// `serve`: mount the virtual tree and keep it in step with the storage until closed.
import { DiskCache } from './disk-cache.js';
import { FdCache } from './fd-cache.js';
import { VirtualFs } from './filesystem.js';
import { invalidateKernel } from './kernel-invalidations.js';
import { mount } from '../fuse/mount.js';
import type { Notifier } from '../fuse/notifier.js';
import { hasCachestat } from '../sys/cached-read.js';
import { FileOpener, type ServeMode } from './open-file.js';
import type { Catalog, VirtualFile } from '../catalog/virtual-file.js';
import { warmSourceData } from '../io/source-data-warmer.js';
import { type AccessPolicy, storageAccess } from './access.js';
import { defaultOverlayDir, OverlayStore } from './overlay-store.js';
import { Overlays } from './overlays.js';
import type { Bytes } from '../base/units.js';
import { RescanQueue } from './rescan-queue.js';

/**
 * How often the storage is scanned when it cannot be watched (a catalog without folders to
 * watch, or a filesystem where inotify sees nothing): the issue asks for new backups within 5 s.
 */
export const DEFAULT_POLL_MS = 2000;
/** The safety net behind the watcher: a pass that stats every folder and reads those whose mtime moved. */
export const DEFAULT_SAFETY_SCAN_MS = 10 * 60 * 1000;

export interface ServeOptions {
  catalog: Catalog;
  mount: string;
  mode: ServeMode;
  /** Where reflink mode builds disk files; needed for 'reflink', optional for 'auto'. */
  cacheDir?: string;
  allowOther: boolean;
  /** Who may read what (default: as the storage allows; see access.ts), with write bits unless readOnly. */
  access?: AccessPolicy;
  /** Refuse every write (EROFS) instead of keeping each writer's in a private overlay (docs/overlays.md). */
  readOnly?: boolean;
  /** Where overlays live (default: defaultOverlayDir) and how much they may take together (default: a share of its free space). */
  overlayDir?: string;
  overlayLimit?: Bytes;
  /**
   * Answer getxattr for `user.DOSATTRIB` of the files inside image folders (docs/browsing.md §3).
   * Off: the kernel is told, once, that there are no extended attributes (ENOSYS), and asks no more.
   */
  dosAttributes?: boolean;
  /** Interval of periodic scans when the storage cannot be watched. */
  rescanMs?: number;
  /** Interval of the safety-net scan while the storage is watched. */
  safetyScanMs?: number;
  log: (line: string) => void;
}

export interface Server {
  readonly mountpoint: string;
  /** Unmounts (lazily when files are still open) and stops rescanning. */
  close(): Promise<void>;
}

/** What a scan changes: the tree, the descriptors and cache of what went, and the log. */
interface Scanned {
  readonly opts: ServeOptions;
  readonly vfs: VirtualFs;
  readonly fds: FdCache;
  readonly cache: DiskCache | undefined;
  /** Logs what is new since the last scan. */
  readonly report: (lines: readonly string[]) => void;
  /** The mounted session's, once mounted: the first scan has nothing to invalidate. */
  notifier: Notifier | undefined;
  /** The files of the last scan. */
  shown: readonly VirtualFile[];
}

/** Scans the storage and shows the result: the tree, the kernel's caches, open descriptors, the reflink cache. */
async function rescan(s: Scanned, changed: ReadonlySet<string> | undefined, restat: boolean): Promise<void> {
  const { catalog, log } = s.opts;
  const { files, warnings } = await catalog.scan(changed, restat);
  s.shown = files;
  const change = s.vfs.update(files);
  s.report([...warnings, ...change.warnings]);
  for (const { changed: f } of change.stale) {
    if (f) log(`${f.key}: its contents changed (a new backup under the same name, or its SYSVOL/ESP regrouped); shown as a new file, open readers keep the old one`);
  }
  if (s.notifier) invalidateKernel(change, s.notifier);
  const { added, removed, replaced } = change;
  if (added.length || removed.length) log(`${s.vfs.fileCount} files (${added.length} new, ${removed.length} gone)`);
  // A path that comes back later may be a different file: do not reuse its old descriptor
  // (evicting one still in use by another file only costs that file a reopen).
  for (const n of [...removed, ...replaced.map((r) => r.before)]) for (const src of n.file.sources) s.fds.evict(src.path);
  if (s.cache && (removed.length > 0 || changed === undefined)) for (const key of await s.cache.prune(s.vfs.keys())) log(`${key}: removed its cache file (backup gone)`);
}

/** Logs only lines that are new since the last call, so an unchanged problem is one line, not one per scan. */
function reporter(log: (line: string) => void): (lines: readonly string[]) => void {
  let logged = new Set<string>();
  return (lines) => {
    for (const line of lines) if (!logged.has(line)) log(line);
    logged = new Set(lines);
  };
}

/**
 * The writers' overlays: none with readOnly, nor (one line logged) when the default folder cannot
 * hold them, so that serve still starts; a folder asked for must work.
 */
async function openOverlays(opts: ServeOptions, log: (line: string) => void): Promise<Overlays | undefined> {
  if (opts.readOnly) return undefined;
  let store: OverlayStore;
  try {
    store = await OverlayStore.open(opts.overlayDir ?? defaultOverlayDir(opts.cacheDir), opts.overlayLimit, log);
  } catch (e) {
    if (opts.overlayDir !== undefined) throw e;
    log(`${(e as Error).message}: opens for writing fail with EROFS (give --overlay-dir a folder that can hold overlays, or --read-only)`);
    return undefined;
  }
  log(`writes to a disk go to its writer's private overlay in ${store.dir} (at most ${store.limit} bytes in all); the storage is never written`);
  return new Overlays(store, log);
}

/** Mounts the catalog's files at opts.mount and keeps them in step with the storage until close(). */
export async function serve(opts: ServeOptions): Promise<Server> {
  const { catalog, log } = opts;
  if (opts.mode === 'reflink' && !opts.cacheDir) throw new Error('reflink mode needs a cache directory (--cache-dir)');
  const fds = new FdCache();
  const cache = opts.cacheDir && opts.mode !== 'passthrough' ? await DiskCache.open(opts.cacheDir, fds) : undefined;
  if (opts.mode === 'auto' && !cache) log('auto mode without a cache directory: serving in passthrough');
  if (!hasCachestat()) log('the kernel has no cachestat (Linux 6.5 brought it): large cold reads go through the page cache instead of O_DIRECT');
  const overlays = await openOverlays(opts, log);
  const vfs = new VirtualFs(new FileOpener(opts.mode, fds, cache, log), log, opts.access ?? storageAccess(overlays !== undefined), overlays, opts.dosAttributes ?? false);
  const report = reporter(log);
  const s: Scanned = { opts, vfs, fds, cache, report, notifier: undefined, shown: [] };
  const queue = new RescanQueue({
    scan: (changed, restat) => rescan(s, changed, restat),
    watchedDirs: catalog.watchedDirs?.bind(catalog),
    pollMs: opts.rescanMs ?? DEFAULT_POLL_MS,
    safetyScanMs: opts.safetyScanMs ?? DEFAULT_SAFETY_SCAN_MS,
    failed: (e) => report([`rescan failed, keeping the previous tree: ${e.message}`]),
    log,
  });
  await queue.first();
  const mounted = await mount(opts.mount, vfs, { allowOther: opts.allowOther, readOnly: overlays === undefined }, log);
  s.notifier = vfs.notifier = mounted.notifier;
  vfs.offers = mounted.offers;
  log(`serving ${vfs.fileCount} files at ${mounted.mountpoint} (${opts.mode}${cache ? `, cache ${cache.dir}` : ''})`);
  // The sizes of the dynamic disks, ahead of the first listing (io/source-data-warmer.ts).
  const t = Date.now();
  const warming = warmSourceData(s.shown.flatMap((f) => f.sizeSources ?? []));
  void warming.done.then((n) => n > 0 && log(`mapped the data of ${n} backing files in ${((Date.now() - t) / 1000).toFixed(1)} s (the sizes of the dynamic disks)`));
  queue.start();
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      warming.stop();
      await queue.close();
      await mounted.unmount();
      vfs.releaseAll();
      fds.clear();
    })());
  return { mountpoint: mounted.mountpoint, close };
}
