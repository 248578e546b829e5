// The thread of source-data-warmer.ts: computes each file's data map and sends them in batches.
// A file that cannot be mapped is skipped: the main thread meets the same error on use and names it.
import { parentPort, workerData } from 'node:worker_threads';
import { computeSourceData } from './source-data.js';
import type { WarmedMap, WarmerData } from './source-data-warmer.js';

/** Maps per message: one message per map cost the main thread more than adopting it. */
const BATCH = 64;

const { sources, stop } = workerData as WarmerData;
let batch: WarmedMap[] = [];
const send = (): void => {
  parentPort!.postMessage(batch, batch.map((m) => m.bits.buffer as ArrayBuffer));
  batch = [];
};
for (const s of sources) {
  if (Atomics.load(stop, 0) !== 0) break;
  try {
    const d = computeSourceData(s.path, s.identity.size);
    batch.push({ path: s.path, identity: s.identity, bits: d.map.granules.bytes, from: d.from, ...(d.bitmapProblem !== undefined && { bitmapProblem: d.bitmapProblem }) });
  } catch {
    continue;
  }
  if (batch.length >= BATCH) send();
}
if (batch.length > 0) send();
