// What a namespace change makes stale in the kernel's caches, told through the FUSE session's
// Notifier (docs/fuse-protocol.md §4: entry and attribute validity).
import type { Notifier } from '../fuse/notifier.js';
import { type NamespaceChange, ROOT_INO } from './namespace.js';

/**
 * Names that appeared, went or name another inode; folders whose names or attributes changed
 * (their mtime and nlink, and the root's) with their cached listings; and files whose owners and
 * modes may have changed under the same inode (replaced by one of the same version).
 */
export function invalidateKernel(change: NamespaceChange, notifier: Notifier): void {
  for (const s of change.stale) notifier.invalidateEntry(s.parent, s.name);
  const dirs = new Set<number>(change.changedDirs.map((d) => d.ino));
  const attrs = new Set<number>();
  for (const { before, after } of change.replaced) if (before.ino === after.ino) attrs.add(after.ino);
  if (change.addedDirs.length || change.removedDirs.length || dirs.size || attrs.size) dirs.add(ROOT_INO);
  for (const ino of dirs) notifier.invalidateDirectory(ino);
  for (const ino of attrs) notifier.invalidateAttributes(ino);
}
