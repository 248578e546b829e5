// Who can read what: whether the Samba users a share admits can read the disks on the mount
// (the kernel checks the attributes the mount shows: serve/access.ts), and whether the storage
// itself is open to every local account. Samba's users come from `pdbedit -L` (name:uid:full
// name, a fixed format), unix accounts from getent/id (numbers), modes from stat.
import { readdir, realpath, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { FolderReach, ownershipOf } from '../catalog/folder-access.js';
import type { Ownership } from '../catalog/virtual-file.js';
import { listing, narrowest, reaching } from '../serve/access.js';
import { type UnixUser, unixGroup, unixUser } from '../serve/unix-accounts.js';
import { type Finding, ok, warn } from './finding.js';
import { findRaw } from './reflink-check.js';
import type { SmbConf } from './smb-conf.js';
import { runTool, whichTool } from './tools.js';

/** Permission triads (inode(7)). */
const R = 4;
const X = 1;

/** inode(7): the owner's bits if the uid matches, else the group's if a member, else the others'. */
function allows(u: UnixUser, o: Ownership, need: number): boolean {
  if (u.uid === 0) return true;
  const shift = u.uid === o.uid ? 6 : u.gids.includes(o.gid) ? 3 : 0;
  return ((o.mode >> shift) & need) === need;
}

const ownership = (s: { uid: number; gid: number; mode: number }): Ownership => ({ uid: s.uid, gid: s.gid, mode: s.mode });

/** A disk on the mount with what reading it takes: the folders above it and the file. */
interface MountedDisk {
  readonly path: string;
  readonly folders: readonly Ownership[];
  readonly file: Ownership;
}

/** Every disk on the mount, or undefined when nothing readable is mounted there. */
async function mountedDisks(mount: string): Promise<MountedDisk[] | undefined> {
  try {
    const above = await new FolderReach().chain(await realpath(mount));
    const out: MountedDisk[] = [];
    for (const client of await readdir(mount)) {
      const dir = join(mount, client);
      const folder = ownership(await stat(dir));
      for (const name of await readdir(dir)) {
        const st = await stat(join(dir, name));
        // Beside the disks, each image's folder of files (docs/browsing.md §1): same owner, not a disk.
        if (st.isFile()) out.push({ path: join(dir, name), folders: [...above, folder], file: ownership(st) });
      }
    }
    return out;
  } catch {
    return undefined;
  }
}

/**
 * Samba's users: `pdbedit -L` prints one "name:uid:full name" line each (pdbedit.c
 * print_sam_info, a plain printf, never translated); -w would print password hashes too.
 */
async function sambaUsers(smbConf: string | undefined): Promise<string[] | undefined> {
  const pdbedit = await whichTool('pdbedit');
  if (!pdbedit) return undefined;
  const r = await runTool(pdbedit, ['-L', ...(smbConf ? ['-s', smbConf] : [])]);
  if (r.code !== 0) return undefined;
  return r.stdout.split('\n').filter((l) => /^[^:]+:\d+:/.test(l)).map((l) => l.slice(0, l.indexOf(':')));
}

/** smb.conf(5) user lists: names and @group / +group, separated by commas or spaces, maybe quoted. */
function listEntries(value: string | undefined): string[] {
  return (value ?? '').split(/[,\s]+/).map((e) => e.replace(/^"|"$/g, '')).filter(Boolean);
}

async function inList(entries: readonly string[], name: string, user: UnixUser): Promise<boolean> {
  for (const e of entries) {
    const group = /^[@+&]+(.+)$/.exec(e)?.[1];
    if (group === undefined ? e === name : await unixGroup(group).then((g) => g !== undefined && user.gids.includes(g.gid))) return true;
  }
  return false;
}

/** For each share exporting the mount: can the Samba users it admits read the disks? */
export async function checkShareReaders(conf: SmbConf, shares: readonly string[], mount: string, smbConf: string | undefined): Promise<Finding[]> {
  const disks = await mountedDisks(mount);
  if (!disks || disks.length === 0) return [];
  const names = await sambaUsers(smbConf);
  if (!names) return [warn('cannot list the Samba users (pdbedit -L failed)', 'run doctor as root, with the smb.conf of the share (--smb-conf)')];
  const accounts = new Map<string, UnixUser>();
  for (const n of names) {
    const u = await unixUser(n);
    if (u) accounts.set(n, u);
  }
  const out: Finding[] = [];
  for (const share of shares) {
    const kv = conf.get(share)!;
    const valid = listEntries(kv.get('valid users'));
    const invalid = listEntries(kv.get('invalid users'));
    const admitted: [string, UnixUser][] = [];
    for (const [n, u] of accounts) {
      if ((valid.length === 0 || (await inList(valid, n, u))) && !(await inList(invalid, n, u))) admitted.push([n, u]);
    }
    const reads = (u: UnixUser, d: MountedDisk): boolean => d.folders.every((f) => allows(u, f, X)) && allows(u, d.file, R);
    const unread = disks.filter((d) => !admitted.some(([, u]) => reads(u, d)));
    const who = admitted.length ? admitted.map(([n]) => n).join(', ') : 'none';
    if (unread.length === 0) {
      out.push(ok(`every disk on ${mount} can be read by a Samba user share [${share}] admits (${who})`));
      continue;
    }
    const d = unread[0]!;
    const group = (await unixGroup(String(d.file.gid)))?.name ?? String(d.file.gid);
    out.push(
      warn(
        `${unread.length} of ${disks.length} disks on ${mount} cannot be read by any Samba user share [${share}] admits (${who}); e.g. ${d.path} is ${d.file.uid}:${group} ${(d.file.mode & 0o777).toString(8).padStart(4, '0')}`,
        `add a Samba user to unix group ${group} (usermod -aG ${group} NAME; smbpasswd -a NAME), or serve with --group and 'valid users = @GROUP' (synthvhd samba-conf --group GROUP)`,
      ),
    );
  }
  return out;
}

/** Warns when any local account can list the storage or read its image files directly. */
export async function checkStorageOpen(storage: string | undefined): Promise<Finding[]> {
  if (!storage) return [];
  const reach = new FolderReach();
  const dir = resolve(storage);
  const listable = (narrowest(listing(await reach.chain(dir)), R | X).mode & 0o7) !== 0;
  const raw = await findRaw(dir);
  const file = raw === undefined ? undefined : await stat(raw).then((s) => ownershipOf(s, raw), () => undefined);
  const readable = raw !== undefined && file !== undefined && (narrowest(reaching([...(await reach.chain(dirname(raw))), file]), R).mode & 0o4) !== 0;
  if (readable) return [warn(`the storage ${storage} is world-readable: every local account can read its backups directly (e.g. ${raw})`, `chmod o-rwx ${storage} (UrBackup needs only its own user and group)`)];
  if (listable) return [warn(`every local account can list the storage ${storage} (client and backup names)`, `chmod o-rwx ${storage}`)];
  return [ok(`the storage ${storage} is closed to other local accounts: the mount shows each disk only to those who could read its files`)];
}
