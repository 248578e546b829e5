// The closing hooks every suite over a storage shares: stop its servers, remove its loop
// filesystem and work folder, and check that the storage's bytes are unchanged.
import test from 'ava';
import { rm } from 'node:fs/promises';
import type { LoopFs } from './loopfs.js';
import type { ServeTracker } from './serve-process.js';
import { treeFingerprint } from './tree-hash.js';

export interface GuardedSuite {
  readonly tracker: ServeTracker;
  readonly fs: LoopFs | undefined;
  readonly work: string | undefined;
  readonly storage: string;
  /** treeFingerprint(storage) taken before the tests ran. */
  readonly before: Record<string, string>;
}

/** Registers the hooks; `suite` is read when they run, after the suite's test.before has set it up. */
export function guardStorage(suite: () => GuardedSuite): void {
  test.after.always(async () => {
    const s = suite();
    await s.tracker.cleanup();
    await s.fs?.cleanup();
    if (s.work) await rm(s.work, { recursive: true, force: true });
  });

  test.after('the storage is unchanged', async (t) => {
    const s = suite();
    t.deepEqual(await treeFingerprint(s.storage), s.before);
  });
}
