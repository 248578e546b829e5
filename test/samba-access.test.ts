// Who may download a disk over SMB: a private smbd with the shipped [backups] share (no valid
// users) over a default mount of a storage 0750 root:<backup group>, and a [granted] share as
// `samba-conf --group` prints it over a `serve --group` mount. Refusals are told by smbclient's
// exit code and the missing download, never by its text.
import { spawn } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import test from 'ava';
import { unixGroup } from '../src/serve/unix-accounts.js';
import { synthvhd } from './helpers/cli.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { requireTool, run } from './helpers/run.js';
import { type SambaUser, type Smbd, addSambaUser, freePort, startSmbd } from './helpers/samba-server.js';
import { biosMbr } from './helpers/scenarios.js';
import { ServeTracker } from './helpers/serve-process.js';
import { guardStorage } from './helpers/storage-guard.js';
import { treeFingerprint } from './helpers/tree-hash.js';
import { TestAccounts } from './helpers/unix-accounts.js';

const DISK = 'bios-pc/240102-0900_Image_C.vhd';

let fs: LoopFs;
let work = '';
let storage = '';
let before: Record<string, string>;
let smbd: Smbd | undefined;
let built = '';
const tracker = new ServeTracker();
const accounts = new TestAccounts();
const samba: Record<'backup' | 'admin' | 'outsider', SambaUser | undefined> = { backup: undefined, admin: undefined, outsider: undefined };

test.before(async () => {
  for (const tool of ['smbd', 'smbclient', 'smbpasswd', 'runuser', 'cmp']) requireTool(tool);
  work = await mkdtemp(join(tmpdir(), 'synthvhd-smbacc-'));
  await chmod(work, 0o755);
  fs = await makeLoopFs('btrfs', 512);
  await chmod(dirname(fs.mountpoint), 0o755);
  storage = join(fs.mountpoint, 'urbackup');
  await mkdir(storage);
  await biosMbr({ storage, workDir: work, kind: 'btrfs' });
  const backupGroup = await accounts.group('sub');
  const adminGroup = await accounts.group('sba');
  await chown(storage, 0, (await unixGroup(backupGroup))!.gid);
  await chmod(storage, 0o750);
  before = await treeFingerprint(storage);
  built = join(work, 'built.vhd');
  const b = await synthvhd(['build', join(storage, 'bios-pc', '240102-0900_Image_C'), '-o', built]);
  if (b.code !== 0) throw new Error(b.stderr);

  const byStorage = await tracker.mountpoint(work, 'mnt-default');
  const granted = await tracker.mountpoint(work, 'mnt-group');
  await tracker.serve(['--storage', storage, '--mount', byStorage, '--allow-other', '--mode', 'passthrough']);
  await tracker.serve(['--storage', storage, '--mount', granted, '--allow-other', '--mode', 'passthrough', '--group', adminGroup]);
  // [granted] as samba-conf --group prints it over the --group mount; [admins-only] the same over
  // the default mount, where the filesystem lets the storage group read: only valid users refuses them there.
  let extraShares = '';
  for (const [name, path] of [['granted', granted], ['admins-only', byStorage]]) {
    const share = await synthvhd(['samba-conf', '--mount', path!, '--share', name!, '--group', adminGroup]);
    if (share.code !== 0) throw new Error(share.stderr);
    extraShares += `${share.stdout}\n`;
  }
  smbd = await startSmbd({ sharePath: byStorage, port: await freePort(), dir: join(work, 'smbd'), extraShares });
  const users = { backup: [backupGroup], admin: [adminGroup], outsider: [] } as const;
  for (const [role, groups] of Object.entries(users) as [keyof typeof users, readonly string[]][]) {
    samba[role] = await addSambaUser(smbd.conf, await accounts.user(`s${role.slice(0, 3)}`, groups));
  }
});

guardStorage(() => ({ tracker, fs, work, storage, before }));
test.after.always(async () => {
  await smbd?.stop();
  await accounts.remove();
});

/** `smbclient get` of DISK from `share` as `who` into a fresh file; its exit code and whether the file arrived whole. */
async function download(share: string, who: SambaUser): Promise<{ code: number | null; local: string }> {
  const local = join(await mkdtemp(join(work, 'dl-')), 'disk.vhd');
  const child = spawn('smbclient', [`//127.0.0.1/${share}`, '-p', String(smbd!.port), '-U', `${who.name}%${who.password}`, '-c', `get "${DISK}" "${local}"`], { stdio: 'ignore' });
  const code = await new Promise<number | null>((r) => child.once('close', r));
  return { code, local };
}

async function sameAsBuild(local: string): Promise<boolean> {
  return run('cmp', [local, built]).then(() => true, () => false);
}

const missingOrEmpty = (path: string): Promise<boolean> => stat(path).then((s) => s.size === 0, () => true);

test.serial('shipped share: a Samba user in the storage group downloads the disk byte-exact', async (t) => {
  const r = await download('backups', samba.backup!);
  t.is(r.code, 0);
  t.true(await sameAsBuild(r.local));
  await rm(dirname(r.local), { recursive: true });
});

test.serial('shipped share (no valid users): Samba users outside the storage group are refused by the filesystem', async (t) => {
  for (const who of [samba.outsider!, samba.admin!]) {
    const r = await download('backups', who);
    t.not(r.code, 0, who.name);
    t.true(await missingOrEmpty(r.local), who.name);
  }
});

test.serial('samba-conf --group share over serve --group: members download byte-exact, everyone else is refused', async (t) => {
  const r = await download('granted', samba.admin!);
  t.is(r.code, 0);
  t.true(await sameAsBuild(r.local));
  for (const who of [samba.outsider!, samba.backup!]) {
    const refused = await download('granted', who);
    t.not(refused.code, 0, who.name);
    t.true(await missingOrEmpty(refused.local), who.name);
  }
});

test.serial("valid users from samba-conf --group refuses a user the filesystem would let read", async (t) => {
  const r = await download('admins-only', samba.backup!);
  t.not(r.code, 0);
  t.true(await missingOrEmpty(r.local));
  // ...while the same user reads the same disk on the same mount through the shipped share.
  const ok = await download('backups', samba.backup!);
  t.is(ok.code, 0);
  t.true(await sameAsBuild(ok.local));
});

// --- doctor ----------------------------------------------------------------------------------

const doctorLines = async (...args: string[]): Promise<string[]> => (await synthvhd(['doctor', ...args])).stdout.trim().split('\n');
const lineOf = (lines: string[], re: RegExp): string => lines.find((l) => re.test(l)) ?? `(no line matches ${re}: ${lines.join(' | ')})`;

test.serial('doctor: ok when a Samba user the share admits can read every disk; warns when none can', async (t) => {
  const [byStorage, granted] = [join(work, 'mnt-default'), join(work, 'mnt-group')];
  const shipped = await doctorLines('--mount', byStorage, '--smb-conf', smbd!.conf);
  t.regex(lineOf(shipped, /\[backups\].*Samba user|Samba user.*\[backups\]/), /^ok +every disk on .* can be read by a Samba user share \[backups\] admits/);
  const group = await doctorLines('--mount', granted, '--smb-conf', smbd!.conf);
  t.regex(lineOf(group, /share \[granted\] admits/), new RegExp(`^ok +every disk .* admits \\(${samba.admin!.name}\\)`));
  // A share whose only user is outside the storage's group: nobody it admits reads anything.
  const closed = join(work, 'closed.conf');
  await writeFile(closed, `${await readFile(smbd!.conf, 'utf8')}\n[closed]\n   path = ${byStorage}\n   valid users = ${samba.outsider!.name}\n`);
  const lines = await doctorLines('--mount', byStorage, '--smb-conf', closed);
  t.regex(lineOf(lines, /share \[closed\] admits/), new RegExp(`^warn +2 of 2 disks .* share \\[closed\\] admits \\(${samba.outsider!.name}\\).* is 0:svhd-sub-\\w+ 0660 — add a Samba user to unix group svhd-sub-`));
  t.regex(lineOf(lines, /share \[backups\] admits/), /^ok/);
});

test.serial('doctor: warns when the storage is world-readable, ok when it is closed', async (t) => {
  t.regex(lineOf(await doctorLines('--storage', storage, '--mount', '/nonexistent'), /storage .* (closed|world|list)/), /^ok +the storage .* is closed to other local accounts/);
  await chmod(storage, 0o755);
  try {
    t.regex(lineOf(await doctorLines('--storage', storage, '--mount', '/nonexistent'), /storage .* (closed|world|list)/), /^warn +the storage .* is world-readable: .* — chmod o-rwx/);
  } finally {
    await chmod(storage, 0o750);
  }
});
