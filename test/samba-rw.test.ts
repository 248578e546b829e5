// A read-write attach over the shipped share (issue 23): a private smbd with the shipped
// smb.conf on 127.0.0.1:445 inside a network namespace of its own, over `serve --allow-other`,
// and Samba's own client library opening a served .vhdx as Windows' VHD driver does
// (GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ, unbuffered). Its writes stay its own, a
// read-only open beside it and every later open read the pristine disk, nothing new can be
// created, and a [readonly] share over a `serve --read-only` mount still reads. A [reflink] share
// over a reflink-mode mount does the same where the kernel writes the writer's clone itself
// (docs/overlays.md §4). Outcomes are told by NTSTATUS codes, never by message text.
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, open, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { synthvhd } from './helpers/cli.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { type Netns, makeNetns } from './helpers/netns.js';
import { requireTool } from './helpers/run.js';
import { type SambaUser, type Smbd, addSambaUser, startSmbd } from './helpers/samba-server.js';
import { uefiGpt } from './helpers/scenarios.js';
import { ServeTracker } from './helpers/serve-process.js';
import {
  FILE_CREATE, FILE_NO_INTERMEDIATE_BUFFERING, FILE_NON_DIRECTORY_FILE, FILE_OPEN, FILE_OVERWRITE_IF, FILE_SHARE_READ, FILE_SHARE_WRITE, GENERIC_READ, GENERIC_WRITE,
  type SmbEntry, type SmbOp, type SmbResult, requirePythonSamba, smbOps,
} from './helpers/smb-ops.js';
import { guardStorage } from './helpers/storage-guard.js';
import { builtDisks } from './helpers/built-disks.js';
import { treeFingerprint } from './helpers/tree-hash.js';

const CLIENT = 'uefi-pc';
const DISK = `${CLIENT}/240101-1200_Image_C.vhdx`;
/** The fixed port the client library speaks to (it has no port option). */
const SMB_PORT = 445;
/** MS-FSCC 2.6 file attributes that make Windows refuse a virtual disk (docs/vhd-vhdx.md §3.1). */
const FILE_ATTRIBUTE_SPARSE_FILE = 0x200;
const FILE_ATTRIBUTE_COMPRESSED = 0x800;
/** MS-ERREF 2.3.1: the NTSTATUS codes a refused create or write open may get. */
const STATUS_ACCESS_DENIED = 0xc0000022;
const STATUS_MEDIA_WRITE_PROTECTED = 0xc00000a2;
const REFUSED = [STATUS_ACCESS_DENIED, STATUS_MEDIA_WRITE_PROTECTED];
/** Where the writes go: the VHDX headers (which Windows rewrites first on a read-write open) and a range at 1 MiB + 4 KiB. */
const WRITES = [
  { offset: 64 * 1024, data: randomBytes(4096) },
  { offset: 1024 * 1024 + 4096, data: randomBytes(256 * 1024) },
];

let fs: LoopFs | undefined;
let work = '';
let storage = '';
let before: Record<string, string> = {};
let mount = '';
let netns: Netns | undefined;
let smbd: Smbd | undefined;
let user: SambaUser | undefined;
const tracker = new ServeTracker();

test.before(async () => {
  for (const tool of ['smbd', 'smbpasswd', 'useradd', 'ip', 'bash']) requireTool(tool);
  requirePythonSamba();
  work = await mkdtemp(join(tmpdir(), 'synthvhd-smbrw-'));
  await chmod(work, 0o755);
  fs = await makeLoopFs('btrfs', 512);
  // Every Samba user reads every disk (samba-access.test.ts closes the storage).
  await chmod(dirname(fs.mountpoint), 0o755);
  storage = join(fs.mountpoint, 'urbackup');
  await mkdir(storage);
  await uefiGpt({ storage, workDir: work, kind: 'btrfs' });
  before = await treeFingerprint(storage);
  mount = await tracker.mountpoint(work, 'mnt');
  const readOnly = await tracker.mountpoint(work, 'mnt-ro');
  await tracker.serve(['--storage', storage, '--mount', mount, '--allow-other', '--mode', 'passthrough', '--formats', 'vhdx', '--overlay-dir', join(work, 'overlays')]);
  await tracker.serve(['--storage', storage, '--mount', readOnly, '--allow-other', '--mode', 'passthrough', '--formats', 'vhdx', '--read-only']);
  const reflink = await tracker.mountpoint(work, 'mnt-reflink');
  const cache = join(fs.mountpoint, 'cache');
  await tracker.serve(['--storage', storage, '--mount', reflink, '--allow-other', '--mode', 'reflink', '--formats', 'vhdx', '--cache-dir', cache, '--overlay-limit', '1G']);
  // A first open builds the disk; writers then start from its clone.
  await pristine(reflink);
  await builtDisks(cache, 1, 60_000);
  const shares = await Promise.all([['readonly', readOnly], ['reflink', reflink]].map(([name, at]) => synthvhd(['samba-conf', '--mount', at!, '--share', name!])));
  for (const share of shares) if (share.code !== 0) throw new Error(share.stderr);
  // After the mounts: the namespace's commands see the host's mounts as they were then.
  netns = await makeNetns();
  smbd = await startSmbd({ sharePath: mount, port: SMB_PORT, dir: join(work, 'smbd'), extraShares: shares.map((x) => x.stdout).join('\n'), netns });
  user = await addSambaUser(smbd.conf, `svhd-rw${randomBytes(3).toString('hex')}`);
});

// smbd first (it holds the mounts open inside the namespace), then the namespace; then
// guardStorage's hooks stop the servers and remove the filesystem and work folder.
test.after.always(async () => {
  await smbd?.stop();
  await netns?.remove().catch(() => undefined);
  await user?.remove().catch(() => undefined);
});
guardStorage(() => ({ tracker, fs, work, storage, before }));

const ops = (list: readonly SmbOp[]): Promise<SmbResult[]> => smbOps({ netns: netns!, conf: smbd!.conf, user: user!.name, password: user!.password }, list);

/** The open Windows' VHD driver makes for a read-write attach (issue 23). */
const openReadWrite = (conn: string, handle: string, share = 'backups', path = DISK): SmbOp => ({
  op: 'open', conn, share, handle, path, access: GENERIC_READ | GENERIC_WRITE, share_access: FILE_SHARE_READ, disposition: FILE_OPEN, options: FILE_NON_DIRECTORY_FILE | FILE_NO_INTERMEDIATE_BUFFERING,
});
/** A read-only open that lets the writer above go on. */
const openReadOnly = (conn: string, handle: string, share = 'backups', path = DISK): SmbOp => ({
  op: 'open', conn, share, handle, path, access: GENERIC_READ, share_access: FILE_SHARE_READ | FILE_SHARE_WRITE, disposition: FILE_OPEN, options: FILE_NON_DIRECTORY_FILE,
});
const reads = (handle: string): SmbOp[] => WRITES.map(({ offset, data }) => ({ op: 'read', handle, offset, length: data.length }));

/** The bytes at WRITES' ranges as served to a local read-only open. */
async function pristine(base = mount): Promise<Buffer[]> {
  const f = await open(join(base, DISK), 'r');
  try {
    return await Promise.all(WRITES.map(async ({ offset, data }) => (await f.read(Buffer.alloc(data.length), 0, data.length, offset)).buffer));
  } finally {
    await f.close();
  }
}

function value<T>(r: SmbResult | undefined, what: string): T {
  if (!r || !('ok' in r)) throw new Error(`${what} failed: ${r && 'ntstatus' in r ? `NTSTATUS 0x${r.ntstatus.toString(16)}` : JSON.stringify(r)}`);
  return r.ok as T;
}
const bytes = (r: SmbResult | undefined, what: string): Buffer => Buffer.from(value<string>(r, what), 'base64');
const status = (r: SmbResult | undefined): number | undefined => (r && 'ntstatus' in r ? r.ntstatus : undefined);

for (const [share, mode] of [['backups', 'passthrough'], ['reflink', 'reflink']] as const) {
  test.serial(`${mode} mode: a read-write open as Windows attaches reads its own writes; a read-only open beside it and a later open read the pristine disk`, (t) =>
    writerBesideReaders(t, share, join(work, share === 'backups' ? 'mnt' : 'mnt-reflink')));
}

async function writerBesideReaders(t: ExecutionContext, share: string, base: string): Promise<void> {
  const want = await pristine(base);
  t.true(WRITES.every((w, i) => !w.data.equals(want[i]!)));
  const r = await ops([
    openReadWrite('writer', 'rw', share),
    ...WRITES.map(({ offset, data }): SmbOp => ({ op: 'write', handle: 'rw', offset, data: data.toString('base64') })),
    ...reads('rw'),
    openReadOnly('reader', 'ro', share),
    ...reads('ro'),
    // A second read-only open on the writer's own connection too.
    openReadOnly('writer', 'ro2', share),
    ...reads('ro2'),
    { op: 'list', conn: 'reader', share, dir: CLIENT },
    { op: 'close', handle: 'rw' },
    { op: 'close', handle: 'ro' },
    { op: 'close', handle: 'ro2' },
    openReadWrite('again', 'rw2', share),
    ...reads('rw2'),
    { op: 'close', handle: 'rw2' },
  ]);
  const n = WRITES.length;
  value(r[0], 'the read-write open');
  for (let i = 0; i < n; i++) value(r[1 + i], `write ${i}`);
  const ownReads = r.slice(1 + n, 1 + 2 * n).map((x, i) => bytes(x, `the writer's read ${i}`));
  t.true(ownReads.every((b, i) => b.equals(WRITES[i]!.data)), 'the writer reads its own writes');
  value(r[1 + 2 * n], 'the read-only open beside the writer');
  t.true(r.slice(2 + 2 * n, 2 + 3 * n).every((x, i) => bytes(x, `read ${i}`).equals(want[i]!)), 'a read-only open on another connection reads the pristine bytes');
  value(r[2 + 3 * n], "a read-only open on the writer's connection");
  t.true(r.slice(3 + 3 * n, 3 + 4 * n).every((x, i) => bytes(x, `read ${i}`).equals(want[i]!)), "a read-only open on the writer's connection reads the pristine bytes");
  const entry = value<SmbEntry[]>(r[3 + 4 * n], 'the listing').find((e) => `${CLIENT}/${e.name}` === DISK);
  t.truthy(entry);
  t.is(entry!.attrib & (FILE_ATTRIBUTE_SPARSE_FILE | FILE_ATTRIBUTE_COMPRESSED), 0, `attributes 0x${entry!.attrib.toString(16)} while a writer has it open`);
  for (const i of [4, 5, 6]) value(r[3 + 4 * n + i - 3], `close ${i - 3}`);
  value(r[7 + 4 * n], 'the read-write open after the others closed');
  t.true(r.slice(8 + 4 * n, 8 + 5 * n).every((x, i) => bytes(x, `read ${i}`).equals(want[i]!)), 'after the last close a new open reads the pristine bytes');
  t.deepEqual(await pristine(base), want, 'a local read of the mount reads the pristine bytes');
}

test.serial('the served files are never SPARSE or COMPRESSED, written or not', async (t) => {
  const r = await ops([
    openReadWrite('w', 'rw'),
    { op: 'write', handle: 'rw', offset: 0, data: randomBytes(65536).toString('base64') },
    { op: 'list', conn: 'w', share: 'backups', dir: CLIENT },
    { op: 'close', handle: 'rw' },
    { op: 'list', conn: 'w', share: 'backups', dir: CLIENT },
  ]);
  value(r[0], 'the read-write open');
  value(r[1], 'the write');
  for (const i of [2, 4]) {
    const entries = value<SmbEntry[]>(r[i], 'the listing').filter((e) => e.name !== '.' && e.name !== '..');
    t.true(entries.length > 0);
    for (const e of entries) t.is(e.attrib & (FILE_ATTRIBUTE_SPARSE_FILE | FILE_ATTRIBUTE_COMPRESSED), 0, `${e.name}: attributes 0x${e.attrib.toString(16)}`);
  }
});

test.serial('creating, deleting or renaming over the share fails; an overwrite empties only its own view; nothing changes for others', async (t) => {
  const names = async (): Promise<string[]> => [...(await readdir(mount)), ...(await readdir(join(mount, CLIENT)))].sort();
  const listed = await names();
  const want = await pristine();
  const size = (await stat(join(mount, DISK))).size;
  const create = (path: string, disposition = FILE_CREATE): SmbOp => ({ op: 'open', conn: 'c', share: 'backups', handle: path, path, access: GENERIC_READ | GENERIC_WRITE, share_access: 0, disposition, options: FILE_NON_DIRECTORY_FILE });
  const r = await ops([
    create('new.bin'),
    create(`${CLIENT}/new.vhdx`),
    { op: 'mkdir', conn: 'c', share: 'backups', path: 'newdir' },
    { op: 'mkdir', conn: 'c', share: 'backups', path: `${CLIENT}/newdir` },
    { op: 'unlink', conn: 'c', share: 'backups', path: DISK },
    { op: 'rename', conn: 'c', share: 'backups', path: DISK, to: `${CLIENT}/renamed.vhdx` },
  ]);
  for (const [i, x] of r.entries()) t.true(REFUSED.includes(status(x)!), `op ${i}: ${JSON.stringify(x)}`);
  // Samba overwrites an existing file by opening it and truncating that handle: the writer's
  // own view goes empty, and is thrown away at its close (docs/overlays.md §1). Its read at 0 is
  // at the end of the file, as a read at the end of the pristine disk is (this client library
  // reports either as an error: the two outcomes are compared).
  const overwrite = await ops([
    create(DISK, FILE_OVERWRITE_IF),
    { op: 'read', handle: DISK, offset: 0, length: 4096 },
    { op: 'close', handle: DISK },
    openReadOnly('r', 'ro'),
    { op: 'read', handle: 'ro', offset: size, length: 4096 },
    { op: 'read', handle: 'ro', offset: 0, length: 4096 },
  ]);
  value(overwrite[0], 'the overwrite open');
  t.true(status(overwrite[4]) !== undefined, `a read at the pristine end: ${JSON.stringify(overwrite[4])}`);
  t.deepEqual(overwrite[1], overwrite[4], 'the overwritten view ends at 0');
  t.true(bytes(overwrite[5], 'a read of the pristine disk after the overwrite').length === 4096);
  t.deepEqual(await names(), listed);
  t.is((await stat(join(mount, DISK))).size, size);
  t.deepEqual(await pristine(), want);
});

test.serial('over a `serve --read-only` mount a read-write open fails and a read-only one reads', async (t) => {
  const readOnlyMount = join(work, 'mnt-ro');
  const want = await pristine(readOnlyMount);
  const r = await ops([openReadWrite('c', 'rw', 'readonly'), openReadOnly('c', 'ro', 'readonly'), ...reads('ro'), { op: 'close', handle: 'ro' }]);
  t.true(REFUSED.includes(status(r[0])!), `the read-write open: ${JSON.stringify(r[0])}`);
  value(r[1], 'the read-only open');
  t.true(r.slice(2, 2 + WRITES.length).every((x, i) => bytes(x, `read ${i}`).equals(want[i]!)));
});
