// Nothing is written or exposed: storage files open read-only only, every write-like FUSE
// operation is EROFS but a writer's own (a private overlay, overlay.test.ts; all of them with
// --read-only), other users see the mount only with --allow-other, the cache dir is 0700,
// and the mount shows only generated disks (no path leads out of it); all of it also with
// --group. Who may read which disk is access.test.ts.
import { constants } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, realpath, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test, { type ExecutionContext } from 'ava';
import { ReadOnlyViolation, readOnlyFlags } from '../src/io/read-only-open.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { run } from './helpers/run.js';
import * as sc from './helpers/scenarios.js';
import { type ServeProcess, ServeTracker } from './helpers/serve-process.js';
import { guardStorage } from './helpers/storage-guard.js';
import { treeFingerprint } from './helpers/tree-hash.js';
import { tryWrites } from './helpers/write-ops.js';

/** write-ops.js as a program, for trying the writes as another user. */
const WRITE_OPS = fileURLToPath(new URL('./helpers/write-ops.js', import.meta.url));
import { TestAccounts } from './helpers/unix-accounts.js';

let fs: LoopFs;
let work: string;
let storage: string;
let grub: sc.Scenario;
let before: Record<string, string>;
const tracker = new ServeTracker();
const accounts = new TestAccounts();
/** A --group and one of its members. */
let group: string;
let member: string;

async function serve(name: string, extra: string[] = []): Promise<{ m: string; srv: ServeProcess }> {
  const m = await tracker.mountpoint(work, name);
  return { m, srv: await tracker.serve(['--storage', storage, '--mount', m, ...extra]) };
}

const vhdName = (): string => `${grub.images._dev_sda1!.folder.split('/').at(-1)}.vhd`;

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-sec-'));
  await chmod(work, 0o755); // user nobody must reach the mount points
  fs = await makeLoopFs('btrfs', 1024);
  // A storage everyone may read (mkdtemp made its parent 0700): the disks show 0444 as its files allow.
  await chmod(dirname(fs.mountpoint), 0o755);
  group = await accounts.group('sec');
  member = await accounts.user('secm', [group]);
  storage = join(fs.mountpoint, 'storage');
  await mkdir(storage);
  grub = await sc.grubMbr({ storage, workDir: work, kind: 'btrfs' });
  before = await treeFingerprint(storage);
});

guardStorage(() => ({ tracker, fs, work, storage, before }));
test.after.always(() => accounts.remove());

/** The two ways of serving: as the storage allows (its files are world-readable here), and --group. */
/** What a writer does through its own handle, kept in its private overlay: opening, Node's truncate (an ftruncate of an r+ open), setting times (kept by nobody). */
const PRIVATE = new Set(['open for writing', 'truncate', 'utimes']);
/**
 * On a writable mount the kernel refuses a user who is not root before asking synthvhd
 * (default_permissions): the folders have no write bits, and only the owner may chmod, chown or
 * set times.
 */
const KERNEL_REFUSES: Record<string, string> = { create: 'EACCES', link: 'EACCES', mknod: 'EACCES', rmdir: 'EACCES', symlink: 'EACCES', chmod: 'EPERM', chown: 'EPERM', utimes: 'EPERM' };

/** The errno name each write-like operation ends with: on a writable mount `op` by `who` (undefined: root). */
function writable(op: string, who: string | undefined): string {
  return (who && KERNEL_REFUSES[op]) || (PRIVATE.has(op) ? 'ok' : 'EROFS');
}

const variants = (): { name: string; args: string[]; mode: number; users: (string | undefined)[]; expect: (op: string, who: string | undefined) => string }[] => [
  { name: 'default', args: [], mode: 0o666, users: [undefined], expect: writable },
  { name: 'group', args: ['--allow-other', '--group', group], mode: 0o660, users: [undefined, member], expect: writable },
  { name: 'read-only', args: ['--read-only'], mode: 0o444, users: [undefined], expect: () => 'EROFS' },
  { name: 'read-only group', args: ['--read-only', '--allow-other', '--group', group], mode: 0o440, users: [undefined, member], expect: () => 'EROFS' },
];

test('the one open path for backing files refuses every write flag', (t) => {
  t.is(readOnlyFlags('/s/x.raw', constants.O_NOFOLLOW), constants.O_RDONLY | constants.O_NOFOLLOW);
  for (const flag of [constants.O_WRONLY, constants.O_RDWR, constants.O_CREAT, constants.O_TRUNC, constants.O_APPEND]) {
    t.throws(() => readOnlyFlags('/s/x.raw', flag), { instanceOf: ReadOnlyViolation, message: /^\/s\/x\.raw: refusing/ });
  }
});

test.serial('every write-like operation but a writer\'s own fails with EROFS (with --read-only: all), by root and (with --group) by a member', async (t) => {
  for (const v of variants()) await writesRefused(t, v);
});

async function writesRefused(t: ExecutionContext, v: ReturnType<typeof variants>[number]): Promise<void> {
  const { m, srv } = await serve(`mnt-ro-${v.name}`, ['--mode', 'passthrough', ...v.args]);
  const dir = join(m, grub.client);
  const f = join(dir, vhdName());
  for (const who of v.users) {
    const results = who ? (JSON.parse(await run('runuser', ['-u', who, '--', process.execPath, WRITE_OPS, f, dir])) as Record<string, string>) : await tryWrites(f, dir);
    t.deepEqual(results, Object.fromEntries(Object.keys(results).map((op) => [op, v.expect(op, who)])), `${v.name} ${who ?? 'root'}`);
  }
  t.is((await stat(f)).mode & 0o7777, v.mode);
  await srv.stop();
}

test.serial('other users cannot read the mount without --allow-other, and can with it', async (t) => {
  const asNobody = (cmd: string): Promise<string> => run('sh', ['-c', `runuser -u nobody -- sh -c "${cmd}" 2>&1; echo rc=$?`]);
  const closed = await serve('mnt-private', ['--mode', 'passthrough']);
  const denied = await asNobody(`ls '${closed.m}'`);
  t.regex(denied, /Permission denied/);
  t.regex(denied, /rc=[1-9]/);
  await closed.srv.stop();
  const open = await serve('mnt-shared', ['--mode', 'passthrough', '--allow-other']);
  const f = join(open.m, grub.client, vhdName());
  const ok = await asNobody(`head -c 1024 '${f}' | wc -c`);
  t.regex(ok, /^1024\nrc=0$/m);
  t.regex(await run('sh', ['-c', `grep ' ${open.m} ' /proc/self/mounts`]), /allow_other/);
  await open.srv.stop();
});

test.serial('the cache dir is created 0700 (and made 0700 if it exists)', async (t) => {
  const fresh = join(fs.mountpoint, 'cache-new', 'nested');
  const a = await serve('mnt-cache-a', ['--mode', 'reflink', '--cache-dir', fresh]);
  t.is((await stat(fresh)).mode & 0o777, 0o700);
  await a.srv.stop();
  const existing = join(fs.mountpoint, 'cache-open');
  await mkdir(existing, { mode: 0o777 });
  await chmod(existing, 0o777);
  const b = await serve('mnt-cache-b', ['--mode', 'reflink', '--cache-dir', existing]);
  t.is((await stat(existing)).mode & 0o777, 0o700);
  await b.srv.stop();
});

test.serial('the mount shows only generated disks; no name leads out of it (also with --group)', async (t) => {
  for (const v of variants()) await onlyGeneratedNames(t, v.name, v.args);
});

async function onlyGeneratedNames(t: ExecutionContext, name: string, args: string[]): Promise<void> {
  const { m, srv } = await serve(`mnt-names-${name}`, ['--mode', 'passthrough', ...args]);
  t.deepEqual(await readdir(m), [grub.client]);
  t.deepEqual((await readdir(join(m, grub.client))).sort(), [vhdName(), `${vhdName()}x`]);
  // `..` is resolved by the kernel to the mount's own parent, never to the storage.
  t.is(await realpath(join(m, grub.client, '..', '..')), await realpath(dirname(m)));
  const c = grub.client;
  for (const [rel, inside] of [[`${c}/..%2F..`, false], [`${c}/%2E%2E`, false], [`${c}/urbackup`, false], [`${c}/../${c}`, true]] as const) {
    const r = await run('sh', ['-c', `ls -d '${m}/${rel}/${vhdName()}' 2>&1; echo rc=$?`]);
    t.regex(r, inside ? /rc=0/ : /No such file/, rel);
  }
  const raw = (await readdir(grub.images._dev_sda1!.folder)).find((f) => f.endsWith('.raw'))!;
  t.regex(await run('sh', ['-c', `ls '${m}/${grub.client}/${raw}' 2>&1; echo rc=$?`]), /No such file/);
  await srv.stop();
}
