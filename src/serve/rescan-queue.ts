// What starts a scan of the storage, one at a time: the storage watcher's changed folders, the
// safety-net period, or polling when the storage cannot be watched.
import { StorageWatcher } from './storage-watcher.js';

/** Changed folders; 'full': a pass of stats; 'restat' (the safety net): also every source's owners and modes. */
export type ScanRequest = ReadonlySet<string> | 'full' | 'restat';

export interface RescanOptions {
  /** One scan: of the changed folders only, or of everything (`changed` undefined), with every source stat'ed again when `restat`. */
  readonly scan: (changed: ReadonlySet<string> | undefined, restat: boolean) => Promise<void>;
  /** The folders to watch after each scan (folder → whether writes of files in it matter); undefined: the storage is polled. */
  readonly watchedDirs: (() => ReadonlyMap<string, boolean>) | undefined;
  readonly pollMs: number;
  readonly safetyScanMs: number;
  /** A queued scan failed: the previous tree stays. */
  readonly failed: (e: Error) => void;
  readonly log: (line: string) => void;
}

/** Requests made while a scan runs are merged into the next one. */
function merged(a: ScanRequest | undefined, b: ScanRequest): ScanRequest {
  if (a === 'restat' || b === 'restat') return 'restat';
  if (a === 'full' || b === 'full') return 'full';
  return new Set([...(a ?? []), ...b]);
}

export class RescanQueue {
  private queued: ScanRequest | undefined;
  private scanning: Promise<void> | undefined;
  private closed = false;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly watcher: StorageWatcher | undefined;

  constructor(private readonly o: RescanOptions) {
    this.watcher = o.watchedDirs
      ? new StorageWatcher(
          (dirs) => this.request(dirs),
          (why) => {
            o.log(`${why}: scanning the storage every ${o.pollMs / 1000} s instead of watching it`);
            this.every(o.pollMs, 'full');
          },
        )
      : undefined;
  }

  /** The first scan, outside the queue: its failure is the caller's. */
  async first(): Promise<void> {
    await this.scan(undefined, false);
  }

  /** Starts the periodic scans, once serving: the safety net behind the watcher, or polling. */
  start(): void {
    if (!this.watcher) return this.every(this.o.pollMs, 'full');
    this.every(this.o.safetyScanMs, 'restat');
    // What changed between the first scan and its watches: a pass of stats.
    this.request('full');
  }

  request(what: ScanRequest): void {
    this.queued = merged(this.queued, what);
    if (this.scanning || this.closed) return;
    const next = this.queued;
    this.queued = undefined;
    this.scanning = this.scan(typeof next === 'string' ? undefined : next, next === 'restat')
      .catch((e: Error) => this.o.failed(e))
      .finally(() => {
        this.scanning = undefined;
        if (this.queued) this.request(this.queued);
      });
  }

  /** Stops watching and the timers; resolves when the scan under way has ended. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.watcher?.close();
    await this.scanning;
  }

  private async scan(changed: ReadonlySet<string> | undefined, restat: boolean): Promise<void> {
    await this.o.scan(changed, restat);
    if (this.watcher) await this.watcher.sync(this.o.watchedDirs!());
  }

  private every(ms: number, what: ScanRequest): void {
    this.timers.add(setInterval(() => this.request(what), ms));
  }
}
