// Owner, group and mode of the virtual tree. The mount is made with default_permissions, so the
// kernel enforces exactly what stat shows; nothing else decides who may read.
//
// By default a disk is shown to be readable by whoever could read it from the storage directly:
// search permission on every folder on the way and read permission on every `.raw` and
// `.raw.mbr` it is assembled from. Many owners and modes become one owner, group and mode that
// never grants more than all of them together (narrowest() says how). `--group NAME` instead
// grants the disks to one unix group on purpose.
import { constants } from 'node:fs';
import type { Ownership, SourceAccess, VirtualFile } from '../catalog/virtual-file.js';

/** The permission triads of one class in st_mode (inode(7)): read, write and search/execute. */
const R = 4;
const W = 2;
const X = 1;
/**
 * What a class that may read a disk gets on the mount: read, and write when writes go to private
 * overlays (docs/overlays.md §3), so that exactly those who may read a disk may open it for writing.
 */
const fileGrant = (writable: boolean): number => (writable ? R | W : R);
/** Folders are never writable. */
const FOLDER_GRANT = R | X;

/** uid and gid of root: the owner when no single user owns everything (root needs no bits). */
const ROOT = 0;

/** The permission bits (no type bits) with their owner and group. */
export interface Access {
  readonly uid: number;
  readonly gid: number;
  /** Permission bits only, e.g. 0o440. */
  readonly mode: number;
}

/** One storage file or folder a reader must be allowed `need` (a triad: R or X or both) on. */
export interface Requirement {
  readonly owner: Ownership;
  readonly need: number;
}

const OWNER = 6;
const GROUP = 3;
const OTHER = 0;

function allows(mode: number, shift: number, need: number): boolean {
  return ((mode >> shift) & need) === need;
}

/**
 * The narrowest one owner, group and mode that stand for all `reqs`: a user passes the result
 * only if the kernel would let them pass every requirement (the result may refuse some who could).
 *
 * - A requirement every class meets (a 0755 `/`) restricts nobody and is left out.
 * - The owner is the one uid owning all the rest, else root; the group likewise, else root's group.
 * - Each class's bit is the AND, over all requirements, of every class of that requirement that
 *   a user of this class might fall into (inode(7): owner first, then group, then others):
 *   - a user of the result's owner class owns a requirement of the same uid (its owner bits),
 *     or else may or may not be in its group (group AND other bits);
 *   - a user of the group class (not the owner, in the group) may own a requirement of another
 *     uid (owner bits too), is in its group when it is the result's group (group bits), and may
 *     be in it or not otherwise (group AND other bits);
 *   - any other user may own a requirement of another uid (owner bits), is outside its group
 *     when it is the result's group (other bits), and may be in it or not otherwise.
 * With one owner and one group (UrBackup's case) this is exact: the same users pass.
 * A source with a POSIX ACL arrives here with its group and other bits cleared (folder-access.ts).
 */
export function narrowest(reqs: readonly Requirement[], grant: number): Access {
  const restricting = reqs.filter((q) => ![OWNER, GROUP, OTHER].every((c) => allows(q.owner.mode, c, q.need)));
  const only = (ids: number[]): number => (new Set(ids).size === 1 ? ids[0]! : ROOT);
  const uid = only(restricting.map((q) => q.owner.uid));
  const gid = only(restricting.map((q) => q.owner.gid));
  let owner = true;
  let group = true;
  let other = true;
  for (const { owner: o, need } of restricting) {
    const [byOwner, byGroup, byOther] = [OWNER, GROUP, OTHER].map((c) => allows(o.mode, c, need));
    const sameOwner = o.uid === uid;
    const sameGroup = o.gid === gid;
    owner &&= sameOwner ? byOwner! : byGroup! && byOther!;
    group &&= (sameOwner || byOwner!) && byGroup! && (sameGroup || byOther!);
    other &&= (sameOwner || byOwner!) && (sameGroup || byGroup!) && byOther!;
  }
  return { uid, gid, mode: ((owner ? grant : 0) << OWNER) | ((group ? grant : 0) << GROUP) | ((other ? grant : 0) << OTHER) };
}

const isFolder = (o: Ownership): boolean => (o.mode & constants.S_IFMT) === constants.S_IFDIR;

/** Passing every folder (search) and reading every file of `list`. */
export function reaching(list: readonly Ownership[]): Requirement[] {
  return list.map((owner) => ({ owner, need: isFolder(owner) ? X : R }));
}

/** Passing every folder of `chain` and listing its last one (read and search). */
export function listing(chain: readonly Ownership[]): Requirement[] {
  return chain.map((owner, i) => ({ owner, need: i === chain.length - 1 ? R | X : X }));
}

/** Who may see what, for VirtualFs.stat(). */
export interface AccessPolicy {
  /** A disk file. */
  disk(file: VirtualFile): Access;
  /** The client folder holding `file` (every file of a folder has the same). */
  folder(file: VirtualFile): Access;
  /** The mount's root, given any one shown file (undefined when there is none). */
  root(file: VirtualFile | undefined): Access;
}

/** The default: what the storage itself allows (the owners and modes of the sources); `writable`: overlays take writes. */
export function storageAccess(writable = false): AccessPolicy {
  const memo = new WeakMap<SourceAccess, { disk?: Access; folder?: Access; root?: Access }>();
  const cached = (a: SourceAccess, kind: 'disk' | 'folder' | 'root', make: () => Access): Access => {
    let m = memo.get(a);
    if (!m) memo.set(a, (m = {}));
    return (m[kind] ??= make());
  };
  return {
    disk: (f) => cached(f.access, 'disk', () => narrowest(reaching(f.access.disk), fileGrant(writable))),
    // Listing a client folder shows its backups' names: as many may do it as may list the real one.
    folder: (f) => cached(f.access, 'folder', () => narrowest(listing(f.access.client), FOLDER_GRANT)),
    // An empty tree shows nothing to anyone.
    root: (f) => (f ? cached(f.access, 'root', () => narrowest(listing(f.access.storage), FOLDER_GRANT)) : { uid: ROOT, gid: ROOT, mode: 0o555 }),
  };
}

/** `--group`: every disk root:gid 0440 (0660 when `writable`), every folder root:gid 0550, whatever the storage says. */
export function groupAccess(gid: number, writable = false): AccessPolicy {
  const disk: Access = { uid: ROOT, gid, mode: (fileGrant(writable) << OWNER) | (fileGrant(writable) << GROUP) };
  const folder: Access = { uid: ROOT, gid, mode: 0o550 };
  return { disk: () => disk, folder: () => folder, root: () => folder };
}
