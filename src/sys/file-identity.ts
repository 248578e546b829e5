// What identifies a file's contents without reading it: a backup's files are never rewritten in
// place, so an unchanged device, inode, size and mtime mean unchanged bytes.
import type { Bytes } from '../base/units.js';

export interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
  readonly size: Bytes;
  readonly mtimeMs: number;
}

/** The identity of a stat's file. */
export function identityOf(st: FileIdentity): FileIdentity {
  return { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
}

/** The identity as text, for cache keys and ids. */
export function identityKey(id: FileIdentity): string {
  return `${id.dev}:${id.ino}:${id.size}:${id.mtimeMs}`;
}

export function sameIdentity(a: FileIdentity, b: FileIdentity): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}
