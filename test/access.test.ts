// Who may read what through the mount: by default exactly who could read the disk's `.raw` and
// `.raw.mbr` files (and pass every folder above them) directly; with --group, one unix group.
// The kernel enforces it (default_permissions) on the attributes stat shows.
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import type { Ownership } from '../src/catalog/virtual-file.js';
import { narrowest, type Requirement } from '../src/serve/access.js';
import { unixGroup } from '../src/serve/unix-accounts.js';
import { synthvhd } from './helpers/cli.js';
import { requireTool, run } from './helpers/run.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import * as sc from './helpers/scenarios.js';
import { eventually, type ServeProcess, ServeTracker } from './helpers/serve-process.js';
import { guardStorage } from './helpers/storage-guard.js';
import { treeFingerprint } from './helpers/tree-hash.js';
import { probe, TestAccounts } from './helpers/unix-accounts.js';
import { OpenFileChild } from './helpers/open-file-child.js';

// --- the fold of many owners and modes into one, against the kernel's own rule -------------

interface User {
  readonly uid: number;
  readonly gids: readonly number[];
}

/** inode(7) "The file mode": owner class if the uid matches, else group if a member, else others. */
function kernelAllows(u: User, o: Ownership, need: number): boolean {
  const shift = u.uid === o.uid ? 6 : u.gids.includes(o.gid) ? 3 : 0;
  return ((o.mode >> shift) & need) === need;
}

const ids = [0, 1000, 1001, 1002];
const requirement = fc.record({
  owner: fc.record({ uid: fc.constantFrom(...ids), gid: fc.constantFrom(...ids), mode: fc.integer({ min: 0, max: 0o777 }) }),
  need: fc.constantFrom(4, 1, 5),
});
const user = fc.record({ uid: fc.constantFrom(...ids.slice(1), 1003), gids: fc.subarray([...ids, 1003]) });

test('the shown owner, group and mode never let a user read what one of the sources refuses them', (t) => {
  fc.assert(
    fc.property(fc.array(requirement, { maxLength: 6 }), user, (reqs: Requirement[], u: User) => {
      const shown = narrowest(reqs, 4);
      if (kernelAllows(u, { ...shown, mode: shown.mode }, 4)) return reqs.every((q) => kernelAllows(u, q.owner, q.need));
      return true;
    }),
    { seed: 15, numRuns: 20000 },
  );
  t.pass();
});

test('with one owner and one group (as UrBackup writes them) the shown mode admits exactly the same users', (t) => {
  const sameIds = fc.array(fc.record({ mode: fc.integer({ min: 0, max: 0o777 }), need: fc.constantFrom(4, 1, 5) }), { minLength: 1, maxLength: 6 });
  fc.assert(
    fc.property(sameIds, user, (list, u: User) => {
      const reqs = list.map(({ mode, need }) => ({ owner: { uid: 1000, gid: 1001, mode }, need }));
      const shown = narrowest(reqs, 4);
      return kernelAllows(u, shown, 4) === reqs.every((q) => kernelAllows(u, q.owner, q.need));
    }),
    { seed: 15, numRuns: 20000 },
  );
  // The genuine 2.5.33 backups: folders 0755, files 0750 (here urbackup:urbackup = 1000:1001).
  const urbackup = narrowest([{ owner: { uid: 1000, gid: 1001, mode: 0o755 }, need: 1 }, { owner: { uid: 1000, gid: 1001, mode: 0o750 }, need: 4 }], 4);
  t.deepEqual(urbackup, { uid: 1000, gid: 1001, mode: 0o440 });
  // Sources everyone may read show as 0444 root, as before.
  t.deepEqual(narrowest([{ owner: { uid: 0, gid: 0, mode: 0o755 }, need: 5 }], 5), { uid: 0, gid: 0, mode: 0o555 });
});

// --- through a real mount ---------------------------------------------------------------------

let fs: LoopFs;
let work: string;
let storage: string;
let bios: sc.Scenario;
let before: Record<string, string>;
const tracker = new ServeTracker();
const accounts = new TestAccounts();
/** The UrBackup-style group the storage belongs to, one of its members, the --group group and one of its members, and a user in neither. */
let backupGroup: string;
let member: string;
let adminGroup: string;
let admin: string;
let outsider: string;
let expectedSha = '';
const vhd = 'bios-pc/240102-0900_Image_C.vhd';
const MiB = 1 << 20;

test.before(async () => {
  for (const tool of ['setfacl', 'runuser']) requireTool(tool);
  work = await mkdtemp(join(tmpdir(), 'synthvhd-access-'));
  await chmod(work, 0o755); // other users must reach the mount points
  fs = await makeLoopFs('btrfs', 1024);
  await chmod(dirname(fs.mountpoint), 0o755); // ...and the storage's parent: only the storage itself is closed
  storage = join(fs.mountpoint, 'urbackup');
  await mkdir(storage);
  // Plain image folders (as on XFS): the chmod test changes a .raw's mode, which btrfs' read-only snapshots refuse.
  bios = await sc.biosMbr({ storage, workDir: work, kind: 'plain' });
  backupGroup = await accounts.group('ub');
  adminGroup = await accounts.group('ba');
  member = await accounts.user('ubm', [backupGroup]);
  admin = await accounts.user('bam', [adminGroup]);
  outsider = await accounts.user('out');
  // Storage 0750 root:<backup group>, as a UrBackup storage path is closed to other users.
  await chown(storage, 0, await gidOf(backupGroup));
  await chmod(storage, 0o750);
  const built = join(fs.mountpoint, 'built.vhd');
  const r = await synthvhd(['build', join(storage, 'bios-pc', '240102-0900_Image_C'), '-o', built]);
  if (r.code !== 0) throw new Error(r.stderr);
  expectedSha = createHash('sha256').update(await readFile(built)).digest('hex');
  before = await treeFingerprint(storage);
});

guardStorage(() => ({ tracker, fs, work, storage, before }));
test.after.always(() => accounts.remove());

async function serve(name: string, extra: string[] = []): Promise<{ m: string; srv: ServeProcess }> {
  const m = await tracker.mountpoint(work, name);
  return { m, srv: await tracker.serve(['--storage', storage, '--mount', m, '--allow-other', ...extra]) };
}

const gidOf = async (group: string): Promise<number> => (await unixGroup(group))!.gid;

/** What `who` gets: the disk's sha256 (or errno), and the listings of the root and the client folder. */
async function seen(who: string | undefined, m: string): Promise<Record<string, string | string[]>> {
  return probe(who, [['disk', 'read', join(m, vhd)], ['root', 'list', m], ['client', 'list', join(m, 'bios-pc')]]);
}

/** The disks, and the folders of the images they are made of (docs/browsing.md §1). */
const clientNames = ['240102-0855_Image_SYSVOL', '240102-0900_Image_C', '240102-0900_Image_C.vhd', '240102-0900_Image_C.vhdx'];

test.serial('storage 0750 root:group: members read the bytes build writes, others get EACCES and see no names, root reads all', async (t) => {
  const { m, srv } = await serve('mnt-default', ['--mode', 'passthrough']);
  const gid = await gidOf(backupGroup);
  const st = await stat(join(m, vhd));
  // The write bits: those who may read a disk may open it for writing, into a private overlay.
  t.deepEqual([st.uid, st.gid, st.mode & 0o7777], [0, gid, 0o660]);
  for (const dir of [m, join(m, 'bios-pc')]) {
    const d = await stat(dir);
    t.deepEqual([d.uid, d.gid, d.mode & 0o7777], [0, gid, 0o550], dir);
  }
  t.deepEqual(await seen(member, m), { disk: expectedSha, root: ['bios-pc'], client: clientNames });
  t.deepEqual(await seen(undefined, m), { disk: expectedSha, root: ['bios-pc'], client: clientNames });
  for (const who of ['nobody', outsider, admin]) t.deepEqual(await seen(who, m), { disk: 'EACCES', root: 'EACCES', client: 'EACCES' }, who);
  t.deepEqual(await probe(member, [['w', 'write', join(m, vhd)]]), { w: 'ok' });
  for (const who of ['nobody', outsider, admin]) t.deepEqual(await probe(who, [['w', 'write', join(m, vhd)]]), { w: 'EACCES' }, who);
  t.is((await seen(member, m)).disk, expectedSha, 'the write was the writer\'s only');
  t.regex(await readFile('/proc/self/mounts', 'utf8'), new RegExp(`${m} fuse.synthvhd rw,[^ ]*default_permissions`));
  await srv.stop();
});

test.serial('each user\'s writes are their own: two users with the same disk open for writing see only their own bytes, readers neither', async (t) => {
  const { m, srv } = await serve('mnt-two-writers', ['--mode', 'passthrough']);
  const path = join(m, vhd);
  const hold = async (user: string | undefined): Promise<OpenFileChild> => {
    const c = new OpenFileChild(path, constants.O_RDWR, user);
    t.teardown(() => c.kill());
    await c.opened;
    return c;
  };
  const [byMember, byRoot] = [await hold(member), await hold(undefined)];
  const pristine = await byRoot.read(MiB, 4096);
  await byMember.write(MiB, Buffer.alloc(4096, 0x6d));
  await byRoot.write(MiB + 4096, Buffer.alloc(4096, 0x72));
  t.true((await byRoot.read(MiB, 4096)).equals(pristine), 'root does not see the member\'s write');
  const second = await hold(member);
  t.true((await second.read(MiB, 8192)).subarray(0, 4096).equals(Buffer.alloc(4096, 0x6d)), 'a second handle of the member shares its overlay');
  t.false((await second.read(MiB + 4096, 4096)).equals(Buffer.alloc(4096, 0x72)), 'and not root\'s');
  t.is((await seen(member, m)).disk, expectedSha, 'a reader sees neither');
  await srv.stop();
});

test.serial('serve --read-only: disks without write bits, a read-only mount, and EROFS for a member\'s open for writing', async (t) => {
  const { m, srv } = await serve('mnt-ro', ['--mode', 'passthrough', '--read-only']);
  t.is((await stat(join(m, vhd))).mode & 0o7777, 0o440);
  t.deepEqual(await probe(member, [['w', 'write', join(m, vhd)], ['r', 'read', join(m, vhd)]]), { w: 'EROFS', r: expectedSha });
  t.regex(await readFile('/proc/self/mounts', 'utf8'), new RegExp(`${m} fuse.synthvhd ro,[^ ]*default_permissions`));
  await srv.stop();
});

test.serial('a storage folder 0700: nobody but root reads, as directly', async (t) => {
  await chmod(storage, 0o700);
  t.teardown(() => chmod(storage, 0o750));
  const { m, srv } = await serve('mnt-closed', ['--mode', 'passthrough']);
  t.is((await stat(join(m, vhd))).mode & 0o777, 0o600);
  t.deepEqual(await seen(member, m), { disk: 'EACCES', root: 'EACCES', client: 'EACCES' });
  t.is((await seen(undefined, m)).disk, expectedSha);
  await srv.stop();
});

test.serial('a chmod of one source (the SYSVOL partner) closes its disk at the safety-net pass, and reopening it opens the disk again', async (t) => {
  // A chmod changes no folder's mtime and is no event the watcher follows: the safety net's pass restats the sources.
  const { m, srv } = await serve('mnt-chmod', ['--mode', 'passthrough', '--safety-scan', '2']);
  const partnerRaw = bios.images.SYSVOL!.raw;
  const mode = (await stat(partnerRaw)).mode & 0o7777;
  t.is((await seen(member, m)).disk, expectedSha);
  await chmod(partnerRaw, 0o600);
  try {
    t.true(await eventually(async () => (await probe(member, [['disk', 'open', join(m, vhd)]])).disk === 'EACCES', 10_000), 'still readable after the chmod');
    // The SYSVOL image is also shown as no disk of its own, so only C: carries it; the vhdx closes as well.
    t.is((await probe(member, [['x', 'open', join(m, `${vhd}x`)]])).x, 'EACCES');
  } finally {
    await chmod(partnerRaw, mode);
  }
  t.true(await eventually(async () => (await probe(member, [['disk', 'open', join(m, vhd)]])).disk === 'ok', 10_000));
  await srv.stop();
});

test.serial('a POSIX ACL refusing a member on one .raw closes the disk to all but its owner', async (t) => {
  const { m, srv } = await serve('mnt-acl', ['--mode', 'passthrough', '--safety-scan', '2']);
  const raw = bios.images.C!.raw;
  t.is((await seen(member, m)).disk, expectedSha);
  await run('setfacl', ['-m', `u:${member}:---`, raw]);
  try {
    t.is((await probe(member, [['raw', 'open', raw]])).raw, 'EACCES', 'the ACL refuses the member the .raw itself');
    t.true(await eventually(async () => (await probe(member, [['disk', 'open', join(m, vhd)]])).disk === 'EACCES', 10_000), 'the disk stays readable');
    const st = await stat(join(m, vhd));
    t.deepEqual([st.uid, st.mode & 0o777], [0, 0o600]);
  } finally {
    await run('setfacl', ['-b', raw]);
  }
  await srv.stop();
});

test.serial('reflink mode and kernel passthrough keep the rules; built disks in the cache are 0600', async (t) => {
  const cache = join(fs.mountpoint, 'cache');
  const { m, srv } = await serve('mnt-reflink', ['--mode', 'reflink', '--cache-dir', cache]);
  // The first open is read through synthvhd while the disk builds; later ones by the kernel.
  t.is((await seen(member, m)).disk, expectedSha);
  t.true(await eventually(async () => (await readdir(cache)).some((n) => n.endsWith('.sources.json')), 10_000));
  t.is((await seen(member, m)).disk, expectedSha);
  for (const who of ['nobody', outsider]) t.is((await seen(who, m)).disk, 'EACCES', who);
  for (const name of (await readdir(cache)).filter((n) => !n.startsWith('.'))) {
    const s = await stat(join(cache, name));
    // The writers' overlay folder is a folder of the cache: 0700.
    t.deepEqual([s.uid, s.mode & 0o7777], [0, name === 'overlays' ? 0o700 : 0o600], name);
  }
  t.is((await stat(cache)).mode & 0o777, 0o700);
  await srv.stop();
});

test.serial('--group grants every disk to that group: root:GROUP 0660, folders 0550, members read and write privately, others EACCES', async (t) => {
  const { m, srv } = await serve('mnt-group', ['--mode', 'passthrough', '--group', adminGroup]);
  const gid = await gidOf(adminGroup);
  for (const [path, mode] of [[join(m, vhd), 0o660], [join(m, `${vhd}x`), 0o660], [m, 0o550], [join(m, 'bios-pc'), 0o550]] as const) {
    const s = await stat(path);
    t.deepEqual([s.uid, s.gid, s.mode & 0o7777], [0, gid, mode], basename(path));
  }
  t.deepEqual(await seen(admin, m), { disk: expectedSha, root: ['bios-pc'], client: clientNames });
  // The storage's own group is not the granted one: its members are refused too.
  for (const who of ['nobody', outsider, member]) t.deepEqual(await seen(who, m), { disk: 'EACCES', root: 'EACCES', client: 'EACCES' }, who);
  t.deepEqual(await probe(admin, [['w', 'write', join(m, vhd)]]), { w: 'ok' });
  t.is((await probe(member, [['w', 'write', join(m, vhd)]])).w, 'EACCES');
  t.regex(srv.log(), new RegExp(`readable \\(and writable into private overlays\\) by group ${adminGroup} \\(gid ${gid}\\)`));
  await srv.stop();
});

test('--group with an unknown group is a usage error naming it', async (t) => {
  const m = await tracker.mountpoint(work, 'mnt-nogroup');
  const r = await synthvhd(['serve', '--storage', storage, '--mount', m, '--group', 'svhd-no-such-group']);
  t.is(r.code, 2);
  t.regex(r.stderr, /--group svhd-no-such-group: no such unix group/);
});
