// Which storage folders changed, from inotify, so that a rescan reads only those.
//
// Node's fs.watch is inotify on Linux, read by libuv's event loop: no thread waits and nothing
// polls. Its two event kinds are the filter needed here: 'rename' (IN_CREATE, IN_DELETE,
// IN_MOVED_*) is a name coming or going, 'change' (IN_MODIFY, IN_ATTRIB) is a write, which
// matters only for the database's folder (and growing images with --show-incomplete): the
// `.raw` being written next to an awaited `.raw.sync` would otherwise wake a rescan per write.
// What fs.watch cannot report (an overflowed event queue) the slow safety-net rescan catches.
import { type FSWatcher, watch } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { basename } from 'node:path';

/**
 * Filesystems where changes made elsewhere (another host, a FUSE server's backend) raise no
 * inotify event here: f_type magic numbers from linux/magic.h (Lustre and GPFS from their sources).
 */
const NO_INOTIFY = new Map<number, string>([
  [0x65735546, 'FUSE'],
  [0x6969, 'NFS'],
  [0xff534d42, 'CIFS'],
  [0xfe534d42, 'SMB2'],
  [0x517b, 'SMB'],
  [0x01021997, '9p'],
  [0x00c36400, 'Ceph'],
  [0x5346414f, 'AFS'],
  [0x6b414653, 'AFS'],
  [0x73757245, 'Coda'],
  [0x7461636f, 'OCFS2'],
  [0x01161970, 'GFS2'],
  [0x0bd00bd0, 'Lustre'],
  [0x47504653, 'GPFS'],
]);
/** Quiet time after the last event before the changed folders are read: UrBackup's steps (snapshot, renames, deletes) come in bursts. */
const SETTLE_MS = 200;
/** A folder that keeps changing is still read at least this often. */
const MAX_SETTLE_MS = 1000;

export class StorageWatcher {
  private readonly watches = new Map<string, { readonly watcher: FSWatcher; readonly contents: boolean }>();
  private pending = new Set<string>();
  /** Folders whose own watch may have died (deleted, or an event named like the folder itself). */
  private readonly rewatch = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private firstPending = 0;
  private failed = false;
  /** Set after the first sync, which follows the full scan. */
  private synced = false;

  /**
   * `onChange` gets the folders that changed, once they settle; `onUnwatchable` is called once
   * with why a folder cannot be watched, after which nothing is watched (the caller polls).
   */
  constructor(private readonly onChange: (dirs: Set<string>) => void, private readonly onUnwatchable: (why: string) => void) {}

  /** Watches exactly `dirs` (folder → whether writes of files in it matter). */
  async sync(dirs: ReadonlyMap<string, boolean>): Promise<void> {
    for (const [dir, w] of this.watches) {
      if (dirs.get(dir) === w.contents && !this.rewatch.has(dir)) continue;
      w.watcher.close();
      this.watches.delete(dir);
    }
    this.rewatch.clear();
    const added = [...dirs].filter(([dir]) => !this.watches.has(dir));
    // statfs first, for all of them: one folder on a filesystem without events means polling.
    const types = await Promise.all(added.map(([dir]) => statfs(dir).then((s) => s.type, () => undefined)));
    for (let i = 0; i < added.length && !this.failed; i++) {
      const [dir, contents] = added[i]!;
      const fs = NO_INOTIFY.get(types[i] ?? 0);
      if (fs) this.fail(`${dir} is on ${fs}, where inotify does not see changes made elsewhere`);
      else if (types[i] !== undefined && this.add(dir, contents) && this.synced) {
        // What changed in it between the rescan that found it and this watch raised no event:
        // read it once more (a backup finished in that moment stayed hidden until the safety scan).
        this.note(dir);
      }
    }
    this.synced = true;
  }

  close(): void {
    clearTimeout(this.timer);
    for (const w of this.watches.values()) w.watcher.close();
    this.watches.clear();
    this.failed = true;
  }

  /** Whether `dir` is watched now. */
  private add(dir: string, contents: boolean): boolean {
    let watcher: FSWatcher;
    try {
      watcher = watch(dir, { persistent: false }, (event, name) => {
        if (name === basename(dir)) this.rewatch.add(dir);
        if (event === 'rename' || contents) this.note(dir);
      });
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Gone meanwhile: the rescan its parent's event causes will tell.
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      this.fail(code === 'ENOSPC' ? `${dir} cannot be watched: the inotify watch limit is reached (sysctl fs.inotify.max_user_watches)` : `${dir} cannot be watched (${code ?? (e as Error).message})`);
      return false;
    }
    watcher.on('error', () => {
      this.rewatch.add(dir);
      this.note(dir);
    });
    this.watches.set(dir, { watcher, contents });
    return true;
  }

  private fail(why: string): void {
    this.close();
    this.onUnwatchable(why);
  }

  private note(dir: string): void {
    if (this.failed) return;
    if (this.pending.size === 0) this.firstPending = Date.now();
    this.pending.add(dir);
    clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(SETTLE_MS, this.firstPending + MAX_SETTLE_MS - Date.now()));
    this.timer = setTimeout(() => {
      const dirs = this.pending;
      this.pending = new Set();
      this.onChange(dirs);
    }, wait);
  }
}
