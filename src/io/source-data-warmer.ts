// Computes the data maps of backing files on a thread after serve mounts, so that the first
// listing finds the sizes of the dynamic disks known (their size follows the `.raw` files' data,
// source-data.ts; docs/architecture.md §5, §6). A map the thread has not sent yet is computed
// where it is needed, as before.
import { Worker } from 'node:worker_threads';
import { DataMap } from '../disk/present-blocks.js';
import type { FileIdentity } from '../sys/file-identity.js';
import { adoptSourceData, sourceDataKnown } from './source-data.js';

export interface WarmSource {
  readonly path: string;
  readonly identity: FileIdentity;
}

/** One map as the thread sends it: its granule bits travel as a transferred buffer. */
export interface WarmedMap {
  readonly path: string;
  readonly identity: FileIdentity;
  readonly bits: Uint8Array;
  readonly from: 'bitmap' | 'seek';
  readonly bitmapProblem?: string;
}

export interface WarmerData {
  readonly sources: readonly WarmSource[];
  /** Int32Array over a SharedArrayBuffer: nonzero when the thread should stop. */
  readonly stop: Int32Array;
}

export interface Warming {
  /** Resolves with the number of maps adopted once the thread is done (or has failed). */
  readonly done: Promise<number>;
  stop(): void;
}

/**
 * Maps of `sources` whose maps are not known yet, computed on a thread that nothing waits for.
 * The thread keeps the process alive until it is done or stopped (after its current file).
 */
export function warmSourceData(sources: readonly WarmSource[]): Warming {
  const seen = new Set<string>();
  const todo = sources.filter((s) => !seen.has(s.path) && seen.add(s.path) && !sourceDataKnown(s.path, s.identity));
  const stop = new Int32Array(new SharedArrayBuffer(4));
  if (todo.length === 0) return { done: Promise.resolve(0), stop: () => undefined };
  let adopted = 0;
  const data: WarmerData = { sources: todo, stop };
  const done = new Promise<number>((resolve) => {
    let w: Worker;
    try {
      w = new Worker(new URL('./source-data-worker.js', import.meta.url), { workerData: data });
    } catch {
      resolve(0);
      return;
    }
    w.on('message', (batch: WarmedMap[]) => {
      for (const m of batch) {
        adoptSourceData(m.path, m.identity, { map: DataMap.of(m.identity.size, m.bits), from: m.from, ...(m.bitmapProblem !== undefined && { bitmapProblem: m.bitmapProblem }) });
        adopted++;
      }
    });
    // A thread that fails leaves its maps to be computed on use.
    w.on('error', () => undefined);
    w.on('exit', () => resolve(adopted));
  });
  return { done, stop: () => Atomics.store(stop, 0, 1) };
}
