// Warms the kernel's caches for a cold first scan: threads that read the client folders ahead of
// the scan, making the same calls (readClient, then each `.raw.mbr`) while it works through the
// ones before. The scan itself stays on its own blocking calls and uses nothing they found: a
// prefetcher that lags, fails or is missing costs only the time it would have saved
// (docs/architecture.md §5, §6).
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

/** Threads that read ahead, leaving the scan a core (docs/architecture.md §6). */
const PREFETCH_THREADS = Math.min(4, Math.max(1, availableParallelism() - 1));

export interface PrefetchData {
  readonly storage: string;
  /** This thread's clients, in the scan's order. */
  readonly clients: readonly string[];
  /** Int32Array over a SharedArrayBuffer: nonzero once the scan no longer needs the threads. */
  readonly stop: Int32Array;
  /** Read each image's `.raw.mbr` too (only images the scan will load, see prefetch-worker.ts). */
  readonly showIncomplete: boolean;
}

export interface Prefetch {
  /** Tells the threads to stop after their current call; they exit on their own. */
  stop(): void;
}

/** Starts reading `clients` (in the scan's order) ahead of a scan, spread over the threads. */
export function prefetchClients(storage: string, clients: readonly string[], showIncomplete: boolean): Prefetch {
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const threads = Math.min(PREFETCH_THREADS, clients.length);
  for (let k = 0; k < threads; k++) {
    const data: PrefetchData = { storage, clients: clients.filter((_, i) => i % threads === k), stop, showIncomplete };
    try {
      const w = new Worker(new URL('./prefetch-worker.js', import.meta.url), { workerData: data });
      // A thread that fails only leaves its clients cold; nothing waits for one.
      w.on('error', () => undefined);
      w.unref();
    } catch {
      break;
    }
  }
  return { stop: () => Atomics.store(stop, 0, 1) };
}
