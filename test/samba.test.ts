// The shipped Samba share over a real FUSE mount: a private smbd on 127.0.0.1 with the shipped
// smb.conf (path and port substituted), `synthvhd serve --allow-other` as a child process, a Samba
// user of its own, and smbclient as the Windows stand-in.
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { shareSection } from '../src/samba/share-section.js';
import { makeLoopFs, type LoopFs } from './helpers/loopfs.js';
import { requireTool, run } from './helpers/run.js';
import { SHIPPED_SHARE_PATH, SHIPPED_SMB_CONF, type SambaUser, type Smbd, addSambaUser, freePort, startSmbd } from './helpers/samba-server.js';
import { biosMbr, uefiGpt } from './helpers/scenarios.js';
import { type ServeProcess, startServe } from './helpers/serve-process.js';

const CLI = new URL('../src/cli/main.cjs', import.meta.url).pathname;
/** The virtual files of the two scenarios: share path → image folder (client/folder). */
const FILES: Readonly<Record<string, string>> = {
  'uefi-pc/240101-1200_Image_C.vhd': 'uefi-pc/240101-1200_Image_C',
  'uefi-pc/240101-1200_Image_C.vhdx': 'uefi-pc/240101-1200_Image_C',
  'uefi-pc/240101-1200_Image_C-dynamic.vhd': 'uefi-pc/240101-1200_Image_C',
  'bios-pc/240102-0900_Image_C.vhd': 'bios-pc/240102-0900_Image_C',
  'bios-pc/240102-0900_Image_C.vhdx': 'bios-pc/240102-0900_Image_C',
};
/** MS-FSCC 2.6 file attributes that make Windows refuse a virtual disk (docs/vhd-vhdx.md §3.1). */
const FILE_ATTRIBUTE_SPARSE_FILE = 0x200;
const FILE_ATTRIBUTE_COMPRESSED = 0x800;

let loop: LoopFs | undefined;
let work = '';
let mountParent = '';
let mount = '';
let server: ServeProcess | undefined;
let smbd: Smbd | undefined;
let user: SambaUser | undefined;
/** `synthvhd build` output, by share path. */
const built = new Map<string, string>();

test.before(async () => {
  for (const tool of ['smbd', 'smbclient', 'smbpasswd', 'smbstatus', 'testparm', 'useradd', 'fusermount', 'cmp']) requireTool(tool);
  loop = await makeLoopFs('btrfs', 1024);
  // The storage is open to every user (mkdtemp made its parent 0700), so every Samba user reads every disk; samba-access.test.ts closes it.
  await chmod(dirname(loop.mountpoint), 0o755);
  work = await mkdtemp(join(tmpdir(), 'synthvhd-samba-'));
  const storage = join(loop.mountpoint, 'urbackup');
  await mkdir(storage);
  const ctx = { storage, workDir: work, kind: 'btrfs' as const };
  await uefiGpt(ctx);
  await biosMbr(ctx);
  // smbd serves the share as the connected user: every folder above the mount must be searchable.
  mountParent = await mkdtemp(join(tmpdir(), 'synthvhd-samba-mnt-'));
  await chmod(mountParent, 0o755);
  mount = join(mountParent, 'mnt');
  server = await startServe(['--storage', storage, '--mount', mount, '--allow-other', '--cache-dir', join(loop.mountpoint, 'cache'), '--formats', 'vhd,vhdx,vhd-dynamic']);
  smbd = await startSmbd({ sharePath: mount, port: await freePort(), dir: join(work, 'smbd') });
  user = await addSambaUser(smbd.conf, `svhd-t${randomBytes(3).toString('hex')}`);
  await mkdir(join(loop.mountpoint, 'built'));
  for (const [path, folder] of Object.entries(FILES)) {
    const out = join(loop.mountpoint, 'built', path.replace('/', '_'));
    await run(process.execPath, [CLI, 'build', join(storage, folder), '-o', out, ...(path.endsWith('-dynamic.vhd') ? ['--format', 'vhd-dynamic'] : [])]);
    built.set(path, out);
  }
});

// A crashed smbd child, or one that lost track of its share modes, shows only in its log.
test.after('no smbd process panicked or lost its share-mode entries', async (t) => {
  for (const name of await readdir(smbd!.logDir)) {
    if (name.startsWith('log.')) t.notRegex(await readFile(join(smbd!.logDir, name), 'utf8'), /PANIC|INTERNAL ERROR|Could not (delete share entry|get share mode lock)/, name);
  }
});

test.after.always(async () => {
  await smbd?.stop();
  await user?.remove().catch(() => undefined);
  await server?.stop();
  if (mount) await run('fusermount', ['-u', '-z', mount]).catch(() => undefined);
  if (mountParent) await rm(mountParent, { recursive: true, force: true });
  if (work) await rm(work, { recursive: true, force: true });
  await loop?.cleanup();
});

interface SmbResult {
  readonly code: number | null;
  /** stdout and stderr together: smbclient reports NT_STATUS errors on either. */
  readonly out: string;
}

/** Runs smbclient against the share; `as` null connects as a guest (-N). */
function smbclient(command: string, as: Credentials | null = user!): Promise<SmbResult> {
  const auth = as ? ['-U', `${as.name}%${as.password}`] : ['-N'];
  const child = spawn('smbclient', [`//127.0.0.1/backups`, '-p', String(smbd!.port), ...auth, '-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, out })));
}

type Credentials = Pick<SambaUser, 'name' | 'password'>;

/** Downloads a share path into `dir` and returns the local file. */
async function download(path: string, dir: string): Promise<string> {
  const local = join(dir, path.replace('/', '_'));
  const r = await smbclient(`get "${path}" "${local}"`);
  if (r.code !== 0) throw new Error(`smbclient get ${path}: ${r.out}`);
  return local;
}

test.serial('a fixed .vhd, a dynamic .vhdx and a dynamic .vhd downloaded over SMB are byte for byte what `synthvhd build` writes', async (t) => {
  const dir = await mkdtemp(join(work, 'dl-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const path of ['bios-pc/240102-0900_Image_C.vhd', 'uefi-pc/240101-1200_Image_C.vhdx', 'uefi-pc/240101-1200_Image_C-dynamic.vhd']) {
    const local = await download(path, dir);
    t.is((await stat(local)).size, (await stat(built.get(path)!)).size, path);
    await t.notThrowsAsync(run('cmp', [local, built.get(path)!]), path);
    await rm(local);
  }
});

test.serial('4 parallel downloads are all correct', async (t) => {
  const dir = await mkdtemp(join(work, 'par-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const paths = Object.keys(FILES);
  const locals = await Promise.all(paths.map((p) => download(p, dir)));
  for (const [i, path] of paths.entries()) await t.notThrowsAsync(run('cmp', [locals[i]!, built.get(path)!]), path);
});

test('allinfo shows neither the sparse nor the compressed attribute', async (t) => {
  for (const path of Object.keys(FILES)) {
    const r = await smbclient(`allinfo "${path}"`);
    const m = /^attributes: .*\(([0-9a-f]+)\)$/m.exec(r.out);
    t.truthy(m, `${path}: no attributes line in ${r.out}`);
    const attrs = parseInt(m![1]!, 16);
    t.is(attrs & FILE_ATTRIBUTE_SPARSE_FILE, 0, `${path}: sparse (${attrs.toString(16)})`);
    t.is(attrs & FILE_ATTRIBUTE_COMPRESSED, 0, `${path}: compressed (${attrs.toString(16)})`);
    t.regex(r.out, new RegExp(`^stream: \\[::\\$DATA\\], ${(await stat(built.get(path)!)).size} bytes$`, 'm'));
  }
});

interface SmbFileId {
  readonly devid: number;
  readonly inode: number;
}

/** Holds `path` open in a fresh SMB connection and reads the file id smbd keys it on (smbstatus). */
async function fileIdOverNewConnection(path: string): Promise<SmbFileId> {
  const child = spawn('smbclient', ['//127.0.0.1/backups', '-p', String(smbd!.port), '-U', `${user!.name}%${user!.password}`], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
  const closed = new Promise((r) => child.once('close', r));
  child.stdin.write(`open "${path}"\n`);
  try {
    let json = '';
    for (let i = 0; i < 100; i++) {
      json = await run('smbstatus', ['-s', smbd!.conf, '-L', '--json']);
      const status = JSON.parse(json) as { open_files?: Record<string, { filename: string; fileid: SmbFileId }> };
      const open = Object.values(status.open_files ?? {}).find((f) => f.filename === path);
      if (open) return { devid: open.fileid.devid, inode: open.fileid.inode };
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${path} never showed up as open in smbstatus; smbclient said: ${out}; smbstatus: ${json}`);
  } finally {
    child.stdin.end('quit\n');
    await closed;
  }
}

test.serial('the SMB file id is the FUSE inode and stays the same across connections', async (t) => {
  const [vhd, vhdx] = ['uefi-pc/240101-1200_Image_C.vhd', 'uefi-pc/240101-1200_Image_C.vhdx'];
  const first = await fileIdOverNewConnection(vhd);
  const second = await fileIdOverNewConnection(vhd);
  t.deepEqual(second, first);
  // smbstatus --json prints the inode as a signed 32-bit number.
  t.is(first.inode >>> 0, (await stat(join(mount, vhd))).ino >>> 0);
  t.not((await fileIdOverNewConnection(vhdx)).inode, first.inode);
});

test('a guest, an unknown user and a wrong password are refused', async (t) => {
  const guest = await smbclient('ls', null);
  t.not(guest.code, 0);
  t.regex(guest.out, /NT_STATUS_(ACCESS_DENIED|LOGON_FAILURE)/);
  t.notRegex(guest.out, /uefi-pc/);
  for (const who of [{ name: 'guest', password: '' }, { name: user!.name, password: 'wrong' }, { name: `nobody${randomBytes(3).toString('hex')}`, password: 'x' }]) {
    const r = await smbclient('ls', who);
    t.not(r.code, 0, who.name);
    t.regex(r.out, /NT_STATUS_(ACCESS_DENIED|LOGON_FAILURE)/, who.name);
  }
  const ok = await smbclient('ls');
  t.is(ok.code, 0, ok.out);
  t.regex(ok.out, /uefi-pc/);
});

test('upload, delete, rename and mkdir are refused', async (t) => {
  const local = join(work, 'upload.bin');
  await writeFile(local, randomBytes(4096));
  const refused = /NT_STATUS_(ACCESS_DENIED|MEDIA_WRITE_PROTECTED)/;
  const vhd = 'uefi-pc/240101-1200_Image_C.vhd';
  for (const cmd of [`put "${local}" new.bin`, `put "${local}" uefi-pc/new.bin`, `del "${vhd}"`, `rename "${vhd}" uefi-pc/renamed.vhd`, 'mkdir newdir']) {
    const r = await smbclient(cmd);
    // smbclient exits 0 after a refused del or mkdir: the message and the listing below tell.
    t.regex(r.out, refused, `${cmd}: ${r.out}`);
  }
  const after = await smbclient('recurse; ls');
  t.regex(after.out, /240101-1200_Image_C\.vhd /);
  t.notRegex(after.out, /new\.bin|renamed|newdir/);
});

test('testparm accepts the shipped smb.conf without warnings', (t) => {
  const r = spawnSync('testparm', ['-s', SHIPPED_SMB_CONF], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /Loaded services file OK/);
  t.notRegex(r.stderr, /Unknown parameter|Ignoring|WARNING|ERROR/i);
  t.regex(r.stdout, /^\[backups\]$/m);
});

/** `key = value` lines of one section, comments dropped. */
function settingsOf(section: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of section.split('\n').map((l) => l.trim())) {
    const m = /^([^#;[][^=]*?)\s*=\s*(.*)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

test('the shipped [backups] section has exactly the settings shareSection produces', async (t) => {
  const shipped = await readFile(SHIPPED_SMB_CONF, 'utf8');
  const section = shipped.slice(shipped.indexOf('\n[backups]'));
  t.true(section.length > 0);
  t.deepEqual([...settingsOf(section)].sort(), [...settingsOf(shareSection({ name: 'backups', path: SHIPPED_SHARE_PATH }))].sort());
});

test('samba-conf --valid-users restricts the share and testparm accepts it', async (t) => {
  const out = await run(process.execPath, [CLI, 'samba-conf', '--mount', '/srv/vhds', '--share', 'disks', '--valid-users', 'alice, @backupadmins']);
  t.regex(out, /^\[disks\]$/m);
  t.regex(out, /^ {3}valid users = alice, @backupadmins$/m);
  const conf = join(work, 'valid-users.conf');
  await writeFile(conf, `[global]\n   server role = standalone server\n\n${out}`);
  const r = spawnSync('testparm', ['-s', conf], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /\[disks\][^[]*valid users = alice,? @backupadmins/);
  t.regex(r.stdout, /\[disks\][^[]*path = \/srv\/vhds/);
  const open = await run(process.execPath, [CLI, 'samba-conf', '--mount', '/srv/vhds']);
  t.notRegex(open, /^\s*valid users/m);
});

test('samba-conf --group admits that unix group (with --valid-users: both) and testparm accepts it', async (t) => {
  const out = await run(process.execPath, [CLI, 'samba-conf', '--mount', '/srv/vhds', '--group', 'backupadmins']);
  t.regex(out, /^ {3}valid users = @backupadmins$/m);
  const both = await run(process.execPath, [CLI, 'samba-conf', '--mount', '/srv/vhds', '--valid-users', 'alice', '--group', 'backupadmins']);
  t.regex(both, /^ {3}valid users = alice, @backupadmins$/m);
  const conf = join(work, 'group.conf');
  await writeFile(conf, `[global]\n   server role = standalone server\n\n${out}`);
  const r = spawnSync('testparm', ['-s', conf], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /\[backups\][^[]*valid users = @backupadmins/);
});

/** VmRSS of a process, in bytes. */
async function rss(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

test.serial('soak: 16 concurrent SMB readers, twice over, every byte right, serve memory flat', async (t) => {
  // smbclient has no ranged read: each reader downloads a whole disk (so the run is bounded by
  // the disks' sizes) and compares it with build output. soak.test.ts covers random ranges over FUSE.
  const ROUNDS = 2;
  const paths = Object.keys(FILES);
  const pid = server!.proc.pid!;
  const before = await rss(pid);
  let bytes = 0;
  let expected = 0;
  for (let round = 0; round < ROUNDS; round++) {
    await Promise.all(
      Array.from({ length: 16 }, async (_, i) => {
        const path = paths[i % paths.length]!;
        const local = await download(path, await mkdtemp(join(work, 'soak-')));
        await run('cmp', [local, built.get(path)!]);
        // Sizes first, then add: `bytes += await …` would read `bytes` before the await and lose the other readers' sums.
        const [got, want] = [(await stat(local)).size, (await stat(built.get(path)!)).size];
        bytes += got;
        expected += want;
        await rm(local, { force: true });
      }),
    );
  }
  const after = await rss(pid);
  t.log(`${Math.round(bytes / 2 ** 20)} MiB received by 16 readers in ${ROUNDS} rounds; serve VmRSS ${before >> 20} → ${after >> 20} MiB`);
  t.is(bytes, expected);
  t.true(after - before < 64 << 20, `serve grew by ${(after - before) >> 20} MiB`);
});
