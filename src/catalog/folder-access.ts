// The folders a reader passes on the way to a storage path, with their owners and modes: reading
// a `.raw` directly needs search permission on every one of them, not only read on the file.
import { constants, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { hasAccessAcl } from '../sys/posix-acl.js';
import { POOLED, type StorageCalls } from '../sys/storage-calls.js';
import type { Ownership, SourceAccess } from './virtual-file.js';

/** Stands for a folder that cannot be stat'ed: only root may pass it. */
const UNKNOWN_FOLDER: Ownership = { uid: 0, gid: 0, mode: constants.S_IFDIR | 0o700 };

/**
 * Owner, group and mode of `path` from its stat. With a POSIX ACL only the owner's bits are
 * certain (acl(5): ACL_USER_OBJ is the mode's owner triad; named entries may refuse users the
 * group or other bits would let in), so the group and other bits count as none.
 */
export function ownershipOf(st: { readonly uid: number; readonly gid: number; readonly mode: number }, path: string): Ownership {
  const mode = hasAccessAcl(path) ? st.mode & ~0o077 : st.mode;
  const key = `${st.uid}.${st.gid}.${mode}`;
  let o = ownerships.get(key);
  if (!o) ownerships.set(key, (o = Object.freeze({ uid: st.uid, gid: st.gid, mode })));
  return o;
}

/** One object per distinct owner, group and mode: a storage has a handful, its scan stats 30 000 files and folders per 10 000 backups. */
const ownerships = new Map<string, Ownership>();

/** Whether two lists hold the same owners, groups and modes in the same order. */
export function sameOwners(a: readonly Ownership[], b: readonly Ownership[]): boolean {
  return a.length === b.length && a.every((o, i) => o.uid === b[i]!.uid && o.gid === b[i]!.gid && o.mode === b[i]!.mode);
}

/** `/a/b/c` → `/`, `/a`, `/a/b`, `/a/b/c`. */
function prefixes(path: string): string[] {
  const out: string[] = [];
  for (let p = path; ; p = dirname(p)) {
    out.unshift(p);
    if (dirname(p) === p) return out;
  }
}

/**
 * Folder ownership for one scan: every path is stat'ed once, so the folders above the storage
 * and the client folders cost one stat per scan, not one per disk. Make a new one per scan.
 */
export class FolderReach {
  private readonly owners = new Map<string, Promise<Ownership>>();
  private readonly reals = new Map<string, Promise<string | undefined>>();
  private readonly chains = new Map<string, Promise<Ownership[]>>();
  /** Folders known to be no symlink, with their parent. */
  private readonly nested = new Map<string, string>();

  constructor(private readonly calls: StorageCalls = POOLED) {}

  /**
   * The folders passed to reach the absolute path `folder`, `folder` itself last: every prefix
   * of the path as written and of where each prefix resolves to (a symlinked client or image
   * folder, as on ZFS storages, makes a reader pass the target's folders too).
   */
  chain(folder: string): Promise<Ownership[]> {
    let c = this.chains.get(folder);
    if (!c) this.chains.set(folder, (c = this.walk(folder)));
    return c;
  }

  private async walk(folder: string): Promise<Ownership[]> {
    const parent = this.nested.get(folder);
    if (parent !== undefined) {
      // Not a symlink: what reaches its parent, then the folder itself (its parent's real path plus its name).
      const [up, real] = await Promise.all([this.chain(parent), this.realOf(folder)]);
      if (real !== undefined) return [...up, await this.ownerOf(real)];
    }
    const paths = prefixes(folder);
    const real = await Promise.all(paths.map((p) => this.realOf(p)));
    const passed = new Set<string>();
    for (const r of real) for (const p of r === undefined ? [] : prefixes(r)) passed.add(p);
    const last = real.at(-1);
    if (last !== undefined) passed.delete(last);
    // An unresolvable prefix stays in as the path written, which then counts as UNKNOWN_FOLDER.
    for (const [i, r] of real.entries()) if (r === undefined) passed.add(paths[i]!);
    const ordered = [...passed, ...(last === undefined ? [] : [last])];
    return Promise.all(ordered.map((p) => this.ownerOf(p)));
  }

  /**
   * What a scan learnt of a folder while reading it: its stat (through a symlink), and whether
   * its entry is a symlink. A folder that is none has its parent's real path plus its name, so
   * neither its stat nor its realpath is asked again (two of the calls per backup of a scan).
   * `path` is absolute and normalized, as the catalog's folders are (joined onto the resolved
   * storage): no path.resolve per backup (docs/architecture.md §6).
   */
  know(path: string, st: Stats, linked: boolean): void {
    const owner = Promise.resolve(ownershipOf(st, path));
    this.owners.set(path, owner);
    if (linked) return;
    this.nested.set(path, dirname(path));
    const real = this.realOf(dirname(path)).then((r) => (r === undefined ? undefined : join(r, basename(path))));
    this.reals.set(path, real);
    void real.then((r) => {
      if (r !== undefined && !this.owners.has(r)) this.owners.set(r, owner);
    });
  }

  private realOf(path: string): Promise<string | undefined> {
    let r = this.reals.get(path);
    if (!r) this.reals.set(path, (r = this.calls.realpath(path).catch(() => undefined)));
    return r;
  }

  private ownerOf(path: string): Promise<Ownership> {
    let o = this.owners.get(path);
    if (!o) {
      o = this.calls.stat(path).then(
        (s) => ownershipOf(s, path),
        () => UNKNOWN_FOLDER,
      );
      this.owners.set(path, o);
    }
    return o;
  }
}

/**
 * One object per distinct SourceAccess: a storage's backups mostly share their owners and modes
 * (UrBackup writes them all alike), so 10 000 disks hold a few of them, not 10 000 sets of
 * arrays (6.5 MiB in a heap profile of 10 000 backups), and serve/access.ts works each out once.
 * Equal access is then the same object.
 */
export class AccessInterner {
  private readonly byKey = new Map<string, WeakRef<SourceAccess>>();
  private readonly gone = new FinalizationRegistry<string>((key) => {
    if (this.byKey.get(key)?.deref() === undefined) this.byKey.delete(key);
  });

  intern(a: SourceAccess): SourceAccess {
    const key = [a.storage, a.client, a.disk].map((list) => list.map((o) => `${o.uid}.${o.gid}.${o.mode}`).join(',')).join('|');
    const have = this.byKey.get(key)?.deref();
    if (have) return have;
    this.byKey.set(key, new WeakRef(a));
    this.gone.register(a, key);
    return a;
  }
}
