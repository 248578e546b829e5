// Private write overlays through a real mount (docs/overlays.md): a disk opened for writing keeps
// its writer's writes to itself, readers before, during and after see the pristine disk, nothing
// is left after close or kill -9, the limit gives ENOSPC, and --read-only refuses the open.
// The server runs as a child (serve-fixture) and every open of the mount is another child's.
import test, { type ExecutionContext } from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, openSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { OpenFileChild } from './helpers/open-file-child.js';
import { tryWrites } from './helpers/write-ops.js';
import { run } from './helpers/run.js';
import { sharedMap } from './helpers/shared-map.js';
import { type FileSpec, type FixtureSpec, layoutOf } from './helpers/serve-fixture.js';
import { type Server, startServer } from './helpers/fixture-server.js';
import { readLayout } from '../src/io/layout-reader.js';
import { parseByteSize } from '../src/cli/byte-size.js';
import { synthvhd } from './helpers/cli.js';

const MiB = 1 << 20;
const DISK = 'client1/230520-0143_Image_C.vhdx';

/** Where overlays go in these tests: a filesystem of their own, whose used space tells what they hold. */
let overlayFs: LoopFs;
/** The storage of reflink-mode tests: btrfs, with the cache beside it. */
let btrfs: LoopFs;

test.before(async () => {
  overlayFs = await makeLoopFs('ext4', 1024);
  btrfs = await makeLoopFs('btrfs', 512);
});
test.after.always(async () => {
  await overlayFs?.cleanup();
  await btrfs?.cleanup();
});

interface Fixture {
  readonly dir: string;
  readonly spec: FixtureSpec;
  readonly specPath: string;
  readonly path: string;
  readonly pristine: Buffer;
  readonly raw: string;
}

/** One 8 MiB + 512 disk over 4 MiB of random data at 1 MiB, with bytes in memory around it. */
async function makeFixture(t: ExecutionContext, o: Partial<FixtureSpec> & { base?: string } = {}): Promise<Fixture> {
  const dir = await mkdtemp(join(o.base ?? tmpdir(), 'synthvhd-overlay-'));
  const mount = join(dir, 'mnt');
  t.teardown(async () => {
    await run('fusermount', ['-u', '-z', mount]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  const raw = join(dir, 'c.raw');
  await writeFile(raw, randomBytes(4 * MiB));
  const file: FileSpec = {
    dir: 'client1', name: '230520-0143_Image_C.vhdx', size: 8 * MiB + 512, mtime: '2023-05-20T01:43:00Z',
    pieces: [
      { kind: 'bytes', start: 0, base64: randomBytes(1024).toString('base64') },
      { kind: 'file', start: MiB, length: 4 * MiB, path: raw, offset: 0 },
      { kind: 'bytes', start: 8 * MiB, base64: randomBytes(512).toString('base64') },
    ],
  };
  const overlayDir = join(overlayFs.mountpoint, `overlays-${t.title.replace(/\W+/g, '-').slice(0, 40)}`);
  const spec: FixtureSpec = { mount, mode: 'passthrough', cacheDir: join(dir, 'cache'), overlayDir, files: [file], ...o };
  const specPath = join(dir, 'spec.json');
  await writeFile(specPath, JSON.stringify(spec));
  const layout = layoutOf(file);
  const pristine = Buffer.alloc(layout.size);
  const fd = openSync(raw, 'r');
  await readLayout(layout, 0, pristine, layout.size, () => ({ fd }));
  closeSync(fd);
  return { dir, spec, specPath, path: join(mount, DISK), pristine, raw };
}

/** A child holding `path` open; killed at the test's end. */
async function opened(t: ExecutionContext, path: string, flags: number): Promise<OpenFileChild> {
  const c = new OpenFileChild(path, flags);
  t.teardown(() => c.kill());
  await c.opened;
  return c;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The size and digest of the whole file as a new reader (a child) sees it. */
async function asNewReader(path: string): Promise<{ size: number; sha: string }> {
  const size = Number((await run('stat', ['-c', '%s', path])).trim());
  return { size, sha: (await run('sha256sum', [path])).split(' ')[0]! };
}

/** Bytes the overlay filesystem has in use. */
async function usedBytes(): Promise<number> {
  const s = await statfs(overlayFs.mountpoint);
  return (s.blocks - s.bfree) * s.bsize;
}

test.serial('a writer reads its writes back; readers before, during and after see the pristine bytes and size; the writes go with the last close', async (t) => {
  const f = await makeFixture(t);
  await startServer(t, f.specPath);
  const size = f.pristine.length;
  const before = await opened(t, f.path, constants.O_RDONLY);
  t.true((await before.read(MiB, 64 * 1024)).equals(f.pristine.subarray(MiB, MiB + 64 * 1024)), 'cached by the reader before');

  const w = await opened(t, f.path, constants.O_RDWR);
  const x = randomBytes(100);
  const tail = randomBytes(5000);
  t.is(await w.write(MiB + 10, x), 100);
  t.is(await w.write(size + 4096, tail), 5000);
  const want = Buffer.concat([f.pristine.subarray(MiB, MiB + 10), x, f.pristine.subarray(MiB + 110, MiB + 4096)]);
  t.true((await w.read(MiB, 4096)).equals(want), 'the granule merges pristine bytes and the write');
  t.true((await w.read(size, 4096)).equals(Buffer.alloc(4096)), 'zeros between the old end and a write past it');
  t.true((await w.read(size + 4096, 5000)).equals(tail));
  t.is(await w.seekEnd(), size + 4096 + 5000, 'the writer sees its own size');

  // A second handle of the same user shares the overlay (Windows may open a disk more than once).
  const w2 = await opened(t, f.path, constants.O_RDWR);
  t.true((await w2.read(MiB, 4096)).equals(want));
  await w2.close();

  const during = await opened(t, f.path, constants.O_RDONLY);
  for (const r of [before, during]) {
    t.true((await r.read(MiB, 64 * 1024)).equals(f.pristine.subarray(MiB, MiB + 64 * 1024)));
    t.is(await r.seekEnd(), size, 'a reader sees the pristine size');
    t.is((await r.read(size - 512, 8192)).length, 512, 'and reads nothing past it');
  }
  t.deepEqual(await asNewReader(f.path), { size, sha: sha(f.pristine) });
  t.deepEqual(await readdir(f.spec.overlayDir!), [], 'overlays are unlinked files');
  t.true((await w.read(MiB, 4096)).equals(want), 'the writer still sees its bytes after others read');

  await w.close();
  t.deepEqual(await asNewReader(f.path), { size, sha: sha(f.pristine) });
  const again = await opened(t, f.path, constants.O_RDWR);
  t.true((await again.read(MiB, 4096)).equals(f.pristine.subarray(MiB, MiB + 4096)), 'a new writer starts from the pristine disk');
  t.is(await again.seekEnd(), size);
  t.true((await readFile(f.raw)).equals(f.pristine.subarray(MiB, 5 * MiB)), 'the backing file is unchanged');
});

test.serial('ftruncate changes only the writer\'s size; bytes past a shrink come back as zeros', async (t) => {
  const f = await makeFixture(t);
  await startServer(t, f.specPath);
  const w = await opened(t, f.path, constants.O_RDWR);
  await w.write(2 * MiB, Buffer.alloc(8192, 0x5a));
  await w.send({ op: 'truncate', size: 2 * MiB + 100 });
  t.is(await w.seekEnd(), 2 * MiB + 100);
  t.deepEqual(await asNewReader(f.path), { size: f.pristine.length, sha: sha(f.pristine) });
  await w.send({ op: 'truncate', size: 64 * MiB });
  t.is(await w.seekEnd(), 64 * MiB);
  const got = await w.read(2 * MiB - 100, 8192);
  t.true(got.equals(Buffer.concat([f.pristine.subarray(2 * MiB - 100, 2 * MiB), Buffer.alloc(100, 0x5a), Buffer.alloc(8192 - 200)])));
  t.true((await w.read(6 * MiB, 4096)).equals(Buffer.alloc(4096)), 'pristine bytes past the shrink are gone for the writer');
  t.is((await run('stat', ['-c', '%s', f.path])).trim(), String(f.pristine.length));
});

/**
 * A writer's reads with the disk as served in the page cache, where the request workers answer
 * the regions it never touched: the others must still read its writes, and zeros past a shrink.
 */
async function writerReadsOverCachedDisk(t: ExecutionContext, f: Fixture, cache: () => Promise<unknown>): Promise<void> {
  const w = await opened(t, f.path, constants.O_RDWR);
  await cache();
  t.true((await w.read(2 * MiB, 4096)).equals(f.pristine.subarray(2 * MiB, 2 * MiB + 4096)), 'an untouched region reads pristine');
  const data = randomBytes(4096);
  await w.write(2 * MiB + 8192, data);
  await cache();
  t.true((await w.read(2 * MiB + 8192, 4096)).equals(data), 'a written granule reads its write');
  t.true((await w.read(2 * MiB, 4096)).equals(f.pristine.subarray(2 * MiB, 2 * MiB + 4096)), 'and the pristine bytes beside it');
  await w.send({ op: 'truncate', size: 3 * MiB + 100 });
  await w.send({ op: 'truncate', size: 8 * MiB });
  await cache();
  t.true((await w.read(4 * MiB, 4096)).equals(Buffer.alloc(4096)), 'past the shrink: zeros, not the cached pristine bytes');
  t.true((await w.read(MiB, 4096)).equals(f.pristine.subarray(MiB, MiB + 4096)), 'below it: pristine');
  t.deepEqual(await asNewReader(f.path), { size: f.pristine.length, sha: sha(f.pristine) });
}

test.serial('with the .raw in the page cache, a writer still reads what it wrote and zeros past a shrink (the request workers answer only regions it never touched)', async (t) => {
  const f = await makeFixture(t);
  await startServer(t, f.specPath);
  await writerReadsOverCachedDisk(t, f, () => readFile(f.raw));
});

test.serial('O_DIRECT aligned writes and reads work', async (t) => {
  const f = await makeFixture(t);
  await startServer(t, f.specPath);
  const w = await opened(t, f.path, constants.O_RDWR | constants.O_DIRECT);
  const data = randomBytes(64 * 1024);
  t.is(await w.write(3 * MiB, data), data.length);
  t.true((await w.read(3 * MiB - 4096, 4096 + data.length)).equals(Buffer.concat([f.pristine.subarray(3 * MiB - 4096, 3 * MiB), data])));
  t.deepEqual(await asNewReader(f.path), { size: f.pristine.length, sha: sha(f.pristine) });
});

test.serial('past --overlay-limit a write fails with ENOSPC, logged once, and the server keeps serving', async (t) => {
  const f = await makeFixture(t, { overlayLimit: 64 * 1024 });
  const srv = await startServer(t, f.specPath);
  const w = await opened(t, f.path, constants.O_RDWR);
  t.is(await w.write(0, randomBytes(48 * 1024)), 48 * 1024);
  for (let i = 0; i < 2; i++) await t.throwsAsync(w.write(MiB, randomBytes(32 * 1024)), { code: 'ENOSPC' });
  t.is(await w.write(4096, randomBytes(8192)), 8192, 'rewriting what the overlay holds takes no more');
  t.is(srv.stderr().match(/reached their limit/g)?.length, 1);
  const df = JSON.parse(await run(process.execPath, ['-e', `require('fs').statfs(process.argv[1], (e, s) => console.log(JSON.stringify(s)))`, f.spec.mount])) as { bavail: number; bsize: number };
  t.is(df.bavail * df.bsize, 64 * 1024 - 48 * 1024, 'statfs shows what the limit leaves as free');
  t.deepEqual(await asNewReader(f.path), { size: f.pristine.length, sha: sha(f.pristine) });
  await w.close();
  const again = await opened(t, f.path, constants.O_RDWR);
  t.is(await again.write(MiB, randomBytes(32 * 1024)), 32 * 1024, 'a closed overlay gives its share back');
  t.is(srv.child.exitCode, null);
});

test.serial('256 MiB written through one handle leave the server\'s RSS flat', async (t) => {
  const f = await makeFixture(t, { overlayLimit: 512 * MiB });
  const srv = await startServer(t, f.specPath);
  const rss = async (): Promise<number> => Number(/VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${srv.child.pid}/status`, 'utf8'))![1]) * 1024;
  // One small run first, so the request path's buffers are in place before the baseline.
  const w = await opened(t, f.path, constants.O_RDWR);
  await w.write(0, randomBytes(MiB));
  const base = await rss();
  await run('sh', ['-c', `head -c ${256 * MiB} /dev/urandom | dd of='${f.path}' bs=1M conv=notrunc iflag=fullblock status=none`]);
  const grown = (await rss()) - base;
  t.true(grown < 48 * MiB, `RSS grew by ${(grown / MiB).toFixed(1)} MiB`);
  t.is(await w.seekEnd(), 256 * MiB, 'both handles of the user share one view');
});

test.serial('kill -9 while a disk is open for writing leaves nothing behind, and a restart serves the pristine disk', async (t) => {
  const f = await makeFixture(t);
  const srv = await startServer(t, f.specPath);
  const base = await usedBytes();
  const w = await opened(t, f.path, constants.O_RDWR);
  for (let i = 0; i < 16; i++) await w.write(i * MiB, randomBytes(MiB));
  t.true((await usedBytes()) - base >= 15 * MiB, 'the overlay holds the writes');
  srv.child.kill('SIGKILL');
  await srv.exited;
  t.deepEqual(await readdir(f.spec.overlayDir!), []);
  await t.throwsAsync(w.read(0, 4096));
  t.true((await usedBytes()) - base < MiB, 'its space is free again');
  await startServer(t, f.specPath);
  t.deepEqual(await asNewReader(f.path), { size: f.pristine.length, sha: sha(f.pristine) });
});

test.serial('--read-only refuses opens for writing with EROFS and shows no write bits', async (t) => {
  const f = await makeFixture(t, { readOnly: true });
  await startServer(t, f.specPath);
  await t.throwsAsync(opened(t, f.path, constants.O_RDWR), { message: /EROFS/ });
  await t.throwsAsync(opened(t, f.path, constants.O_WRONLY), { message: /EROFS/ });
  t.is((await stat(f.path)).mode & 0o222, 0);
});

test.serial('a default overlay folder that cannot be made leaves serve as with --read-only, one line logged', async (t) => {
  // Passthrough mode makes no cache there: only the overlay folder under it is tried, below a
  // file (ENOTDIR) or in /proc (ENOENT below a folder that exists, where Node's recursive mkdir never returns).
  for (const [cacheDir, code] of [[join(process.execPath, 'cache'), 'ENOTDIR'], ['/proc/synthvhd-no-cache', 'ENOENT']] as const) {
    const f = await makeFixture(t, { cacheDir, overlayDir: undefined });
    const srv = await startServer(t, f.specPath);
    t.regex(srv.stderr(), new RegExp(`--overlay-dir ${cacheDir}/overlays: cannot make the folder: .*${code}.*opens for writing fail with EROFS`));
    await t.throwsAsync(opened(t, f.path, constants.O_RDWR), { message: /EROFS/ });
    t.is((await stat(f.path)).mode & 0o222, 0);
    t.deepEqual(await asNewReader(f.path), { size: f.pristine.length, sha: sha(f.pristine) });
    srv.child.kill('SIGTERM');
    await srv.exited;
  }
});

test.serial('still refused: O_TRUNC, O_APPEND, chmod, chown, xattrs, create, delete, rename, links, mkdir; disks get write bits, folders none', async (t) => {
  const f = await makeFixture(t);
  await startServer(t, f.specPath);
  for (const flags of [constants.O_WRONLY | constants.O_TRUNC, constants.O_RDWR | constants.O_APPEND]) await t.throwsAsync(opened(t, f.path, flags), { message: /EROFS/ });
  const dir = join(f.spec.mount, 'client1');
  const results = await tryWrites(f.path, dir);
  // Opening for writing, and what a writer does through its handle (Node's truncate is an
  // ftruncate of an r+ open), change only a private view; times are accepted and kept by nobody.
  const allowed = new Set(['open for writing', 'truncate', 'utimes']);
  t.deepEqual(results, Object.fromEntries(Object.keys(results).map((op) => [op, allowed.has(op) ? 'ok' : 'EROFS'])));
  t.is((await stat(f.path)).mode & 0o777, 0o666);
  t.is((await stat(dir)).mode & 0o222, 0);
  t.deepEqual(await asNewReader(f.path), { size: f.pristine.length, sha: sha(f.pristine) });
});

/** Waits until reflink mode has built the disk (its line in the log). */
async function built(srv: Server): Promise<void> {
  for (let i = 0; i < 100 && !srv.stderr().includes('reflinked copy ready'); i++) await new Promise((r) => setTimeout(r, 100));
  if (!srv.stderr().includes('reflinked copy ready')) throw new Error(`not built: ${srv.stderr()}`);
}

test.serial('reflink mode with kernel passthrough: a writer opening alone gets its clone through the kernel; readers meanwhile read the disk as served through synthvhd', async (t) => {
  const f = await makeFixture(t, { base: btrfs.mountpoint, mode: 'reflink', overlayDir: undefined });
  const srv = await startServer(t, f.specPath);
  const size = f.pristine.length;
  t.deepEqual(await asNewReader(f.path), { size, sha: sha(f.pristine) });
  await built(srv);
  const w = await opened(t, f.path, constants.O_RDWR);
  t.deepEqual(await readdir(join(f.spec.cacheDir!, 'overlays')), [], 'the default overlay folder is under the cache, holding no names');
  const x = randomBytes(4096);
  await w.write(2 * MiB, x);
  t.true((await w.read(2 * MiB - 10, 4106)).equals(Buffer.concat([f.pristine.subarray(2 * MiB - 10, 2 * MiB), x])));
  // A second handle of the same writer shares the view, through the kernel: a shared map works.
  const mark = Buffer.from('mapped');
  t.true((await sharedMap(f.path, 2 * MiB, mark)).equals(Buffer.concat([mark, x.subarray(mark.length)])));
  t.true((await w.read(2 * MiB, 6)).equals(mark), 'the writer reads what its map wrote');
  await w.write(size + 4096, randomBytes(5000));
  t.is(await w.seekEnd(), size + 4096 + 5000, 'the writer sees its own size');

  const r = await opened(t, f.path, constants.O_RDONLY);
  t.true((await r.read(2 * MiB, 4096)).equals(f.pristine.subarray(2 * MiB, 2 * MiB + 4096)), 'a reader opened meanwhile reads the pristine disk');
  t.is(await r.seekEnd(), size, 'and its size');
  t.deepEqual(await asNewReader(f.path), { size, sha: sha(f.pristine) });
  await w.close();
  // r keeps the closed writer's clone as the inode's backing file: a new writer waits for it.
  await t.throwsAsync(opened(t, f.path, constants.O_RDWR), { message: /EBUSY/ });
  await r.close();
  const again = await opened(t, f.path, constants.O_RDWR);
  t.true((await again.read(2 * MiB, 4096)).equals(f.pristine.subarray(2 * MiB, 2 * MiB + 4096)), 'a new writer starts from the pristine disk');
  t.is(await again.seekEnd(), size);
  await again.close();

  // Readers first: the kernel reads the built disk itself, and allows no other backing file beside it.
  const first = await opened(t, f.path, constants.O_RDONLY);
  await t.throwsAsync(opened(t, f.path, constants.O_RDWR), { message: /EBUSY/ });
  t.regex(srv.stderr(), /read through kernel passthrough: an open for writing fails with EBUSY/);
  await first.close();
  await (await opened(t, f.path, constants.O_RDWR)).close();
  t.deepEqual(await asNewReader(f.path), { size, sha: sha(f.pristine) });
});

test.serial('reflink mode: a writer whose disk the overlay limit cannot take whole stays with synthvhd, and its writes past the limit fail with ENOSPC', async (t) => {
  const f = await makeFixture(t, { base: btrfs.mountpoint, mode: 'reflink', overlayDir: undefined, overlayLimit: MiB });
  const srv = await startServer(t, f.specPath);
  await asNewReader(f.path);
  await built(srv);
  const w = await opened(t, f.path, constants.O_RDWR);
  await t.throwsAsync(sharedMap(f.path, 0), { message: /ENODEV/ }, 'a direct I/O handle: no shared map');
  t.regex(srv.stderr(), /--overlay-limit leaves \d+ bytes, less than the \d+ its writer could take/);
  t.is(await w.write(MiB, randomBytes(MiB / 2)), MiB / 2);
  await t.throwsAsync(w.write(3 * MiB, randomBytes(MiB)), { code: 'ENOSPC' });
  t.deepEqual(await asNewReader(f.path), { size: f.pristine.length, sha: sha(f.pristine) });
});

test.serial('reflink mode, with the built disk in the page cache: a writer still reads what it wrote and zeros past a shrink', async (t) => {
  const f = await makeFixture(t, { base: btrfs.mountpoint, mode: 'reflink', overlayDir: undefined });
  const srv = await startServer(t, f.specPath);
  await asNewReader(f.path);
  await built(srv);
  // A reader through kernel passthrough reads the built disk through its page cache.
  await writerReadsOverCachedDisk(t, f, () => asNewReader(f.path));
});

test.serial('reflink mode without kernel passthrough: readers and writers of one disk open in any order', async (t) => {
  const f = await makeFixture(t, { base: btrfs.mountpoint, mode: 'reflink', overlayDir: undefined });
  const srv = await startServer(t, f.specPath, { ...process.env, SYNTHVHD_KERNEL_WITHOUT: 'passthrough' });
  t.deepEqual(await asNewReader(f.path), { size: f.pristine.length, sha: sha(f.pristine) });
  await built(srv);
  const r = await opened(t, f.path, constants.O_RDONLY);
  const w = await opened(t, f.path, constants.O_RDWR);
  await w.write(2 * MiB + 1, Buffer.from('written'));
  t.is((await w.read(2 * MiB + 1, 7)).toString(), 'written');
  t.true((await r.read(2 * MiB, 4096)).equals(f.pristine.subarray(2 * MiB, 2 * MiB + 4096)));
  t.deepEqual(await asNewReader(f.path), { size: f.pristine.length, sha: sha(f.pristine) });
});

test('serve --overlay-limit takes sizes with K, M, G, T and names the option when it cannot', async (t) => {
  t.is(parseByteSize('--overlay-limit', '20G'), 20 * 2 ** 30);
  t.is(parseByteSize('--overlay-limit', '512k'), 512 * 1024);
  t.is(parseByteSize('--overlay-limit', '1.5MiB'), 1.5 * MiB);
  t.is(parseByteSize('--overlay-limit', '4096'), 4096);
  const r = await synthvhd(['serve', '--storage', '/nonexistent', '--mount', '/nonexistent-mnt', '--overlay-limit', '12X']);
  t.is(r.code, 2);
  t.regex(r.stderr, /--overlay-limit: '12X' is not a size/);
  const both = await synthvhd(['serve', '--storage', '/nonexistent', '--mount', '/nonexistent-mnt', '--read-only', '--overlay-limit', '1G']);
  t.is(both.code, 2);
  t.regex(both.stderr, /--read-only turns off/);
});
