// The FUSE filesystem through a real mount. The server runs as a child process and every read of
// the mount happens in other child processes (a process must not touch its own FUSE mount).
import test, { type ExecutionContext } from 'ava';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readdir, readFile, readlink, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readLayout } from '../src/io/layout-reader.js';
import { heldReader, type HeldReader, readWhileStopped } from './helpers/held-reader.js';
import { makeLoopFs } from './helpers/loopfs.js';
import { requireTool, run } from './helpers/run.js';
import { type FileSpec, type FixtureSpec, layoutOf } from './helpers/serve-fixture.js';
import { type Server, startServer } from './helpers/fixture-server.js';

const execFileP = promisify(execFile);
const MiB = 1 << 20;

interface Fixture {
  readonly dir: string;
  readonly specPath: string;
  readonly spec: FixtureSpec;
  readonly raws: readonly string[];
  /** The files of spec, by "dir/name". */
  readonly byPath: Map<string, FileSpec>;
  save(): Promise<void>;
}

/** Two backing files of random data and three virtual files over them (one with an unaligned partition). */
async function makeFixture(t: ExecutionContext, opts: { base?: string; mode?: FixtureSpec['mode']; rescanMs?: number } = {}): Promise<Fixture> {
  const dir = await mkdtemp(join(opts.base ?? tmpdir(), 'synthvhd-fuse-'));
  const mount = join(await mkdtemp(join(tmpdir(), 'synthvhd-mnt-')), 'mnt');
  t.teardown(async () => {
    await run('fusermount', ['-u', '-z', mount]).catch(() => undefined);
    await rm(join(mount, '..'), { recursive: true, force: true });
    await rm(dir, { recursive: true, force: true });
  });
  const raws = [join(dir, 'c.raw'), join(dir, 'd.raw')];
  await writeFile(raws[0]!, randomBytes(4 * MiB));
  await writeFile(raws[1]!, randomBytes(3 * MiB));
  const b64 = (n: number): string => randomBytes(n).toString('base64');
  const spec: FixtureSpec = {
    mount,
    mode: opts.mode ?? 'passthrough',
    cacheDir: join(dir, 'cache'),
    rescanMs: opts.rescanMs,
    files: [
      {
        dir: 'client1', name: '230520-0143_Image_C.vhdx', size: 8 * MiB + 512, mtime: '2023-05-20T01:43:00Z',
        pieces: [
          { kind: 'bytes', start: 0, base64: b64(1024) },
          { kind: 'file', start: MiB, length: 4 * MiB, path: raws[0]!, offset: 0 },
          { kind: 'bytes', start: MiB + 4000, base64: b64(200) },
          { kind: 'bytes', start: 8 * MiB, base64: b64(512) },
        ],
      },
      {
        dir: 'client1', name: '230521-0143_Image_C.vhd', size: 4 * MiB, mtime: '2023-05-21T01:43:00Z',
        pieces: [
          { kind: 'bytes', start: 0, base64: b64(512) },
          { kind: 'file', start: 63 * 512, length: 3 * MiB, path: raws[1]!, offset: 0 },
        ],
      },
      {
        dir: 'client2', name: '230520-0200_Image_D.vhdx', size: 2 * MiB + 512, mtime: '2023-05-20T02:00:00Z',
        pieces: [
          { kind: 'file', start: 0, length: 2 * MiB, path: raws[1]!, offset: MiB },
          { kind: 'bytes', start: 2 * MiB, base64: b64(512) },
        ],
      },
    ],
  };
  const specPath = join(dir, 'spec.json');
  const fixture: Fixture = {
    dir, specPath, spec, raws,
    byPath: new Map(spec.files.map((f) => [`${f.dir}/${f.name}`, f])),
    save: () => writeFile(specPath, JSON.stringify(spec)),
  };
  await fixture.save();
  return fixture;
}

/** The bytes a virtual file must have, read from the backing files with readLayout. */
async function expected(spec: FileSpec): Promise<Buffer> {
  const layout = layoutOf(spec);
  const fds = new Map<string, number>();
  try {
    const buf = Buffer.alloc(layout.size);
    await readLayout(layout, 0, buf, layout.size, (s) => {
      if (!fds.has(s.path)) fds.set(s.path, openSync(s.path, 'r'));
      return { fd: fds.get(s.path)! };
    });
    return buf;
  } finally {
    for (const fd of fds.values()) closeSync(fd);
  }
}

async function stopServer(s: Server): Promise<number | null> {
  s.child.kill('SIGTERM');
  return s.exited;
}

/** Whether `dir` is a mount point (read from /proc, never by touching the mount). */
async function isMounted(dir: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((l) => l.split(' ')[4] === dir);
}

/** A finished build: the disk file with a sidecar that says it is complete. */
async function builtInCache(cacheFile: string): Promise<boolean> {
  const sidecar = await readFile(`${cacheFile}.sources.json`, 'utf8').catch(() => '{}');
  return (JSON.parse(sidecar) as { complete?: boolean }).complete === true && (await stat(cacheFile).then(() => true, () => false));
}

async function waitFor(what: string, cond: () => Promise<boolean>, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** stat of the mount's entries, from a child: name -> [hex mode, size, mtime s, nlink, inode, blocks]. */
async function statAll(mount: string, paths: readonly string[]): Promise<Map<string, number[]>> {
  const out = await run('stat', ['-c', '%n %f %s %Y %h %i %b', ...paths.map((p) => join(mount, p))]);
  return new Map(
    out.trim().split('\n').map((line) => {
      const [name, mode, ...nums] = line.split(' ');
      return [name!.slice(mount.length).replace(/^\//, ''), [parseInt(mode!, 16), ...nums.map(Number)]];
    }),
  );
}

async function readRange(path: string, pos: number, len: number): Promise<Buffer> {
  const { stdout } = await execFileP('dd', [`if=${path}`, 'bs=65536', 'iflag=skip_bytes,count_bytes', `skip=${pos}`, `count=${len}`, 'status=none'], { encoding: 'buffer', maxBuffer: 64 * MiB });
  return stdout;
}

async function listDir(path: string): Promise<string[]> {
  return (await run('ls', ['-1', path])).split('\n').filter(Boolean);
}

/** cmp of the mounted file against the expected bytes, by a child process. */
async function cmpMounted(f: Fixture, path: string): Promise<void> {
  const want = join(f.dir, `want-${path.replace('/', '_')}`);
  await writeFile(want, await expected(f.byPath.get(path)!));
  await run('cmp', [join(f.spec.mount, path), want]);
  await unlink(want);
}

test.before(() => {
  for (const tool of ['fusermount', 'stat', 'dd', 'cmp', 'ls', 'bash', 'touch']) requireTool(tool);
});

test.serial('tree: modes, sizes, mtimes, nlink and inodes that survive a restart; SIGTERM unmounts and exits 0', async (t) => {
  const f = await makeFixture(t);
  let server = await startServer(t, f.specPath);
  const { mount } = f.spec;
  t.deepEqual(await listDir(mount), ['client1', 'client2']);
  t.deepEqual(await listDir(join(mount, 'client1')), ['230520-0143_Image_C.vhdx', '230521-0143_Image_C.vhd']);
  const paths = ['', 'client1', 'client2', ...f.byPath.keys()];
  const before = await statAll(mount, paths);
  t.deepEqual(before.get('')!.slice(0, 1), [0o40555]);
  t.is(before.get('')![3], 4, 'root nlink = 2 + two client dirs');
  for (const dir of ['client1', 'client2']) {
    t.is(before.get(dir)![0], 0o40555);
    t.is(before.get(dir)![3], 2);
  }
  for (const [path, spec] of f.byPath) {
    const [mode, size, mtime, nlink, , blocks] = before.get(path)!;
    t.is(mode, 0o100666, `${path}: readable by all, so writable by all into private overlays`);
    t.is(size, spec.size, path);
    t.is(mtime, Date.parse(spec.mtime) / 1000, path);
    t.is(nlink, 1, path);
    t.is(blocks, Math.ceil(spec.size / 512), path);
  }
  const inodes = paths.map((p) => before.get(p)![4]);
  t.is(new Set(inodes).size, inodes.length, 'every entry has its own inode');
  t.true((await run('ls', ['-l', join(mount, 'client2')])).includes(`-rw-rw-rw- 1`));

  t.is(await stopServer(server), 0);
  t.false(await isMounted(mount));
  server = await startServer(t, f.specPath);
  const after = await statAll(mount, paths);
  t.deepEqual(paths.map((p) => after.get(p)![4]), inodes, 'same inodes after a restart');
  t.is(await stopServer(server), 0);
});

test.serial('contents: 8 parallel readers of random ranges, then cmp of every file', async (t) => {
  const f = await makeFixture(t);
  await startServer(t, f.specPath);
  const files = [...f.byPath.entries()];
  const want = new Map(await Promise.all(files.map(async ([p, s]) => [p, await expected(s)] as const)));
  for (let round = 0; round < 4; round++) {
    await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        const [path, spec] = files[(round + i) % files.length]!;
        const pos = Math.floor(Math.random() * spec.size);
        const len = Math.min(spec.size - pos, 1 + Math.floor(Math.random() * 3 * MiB));
        const got = await readRange(join(f.spec.mount, path), pos, len);
        t.true(got.equals(want.get(path)!.subarray(pos, pos + len)), `${path} [${pos}, +${len})`);
      }),
    );
  }
  for (const path of f.byPath.keys()) await cmpMounted(f, path);
  t.pass();
});

test.serial('data not in the page cache is read O_DIRECT and matches, also up to a source that ends mid-block', async (t) => {
  const f = await makeFixture(t);
  const odd = join(f.dir, 'odd.raw');
  await writeFile(odd, randomBytes(3 * MiB + 1000));
  const spec: FileSpec = {
    dir: 'client3', name: '230601-0000_Image_E.vhd', size: 4 * MiB, mtime: '2023-06-01T00:00:00Z',
    pieces: [{ kind: 'file', start: 512 * 1024, length: 3 * MiB + 1000, path: odd, offset: 0 }],
  };
  f.spec.files.push(spec);
  f.byPath.set('client3/230601-0000_Image_E.vhd', spec);
  await f.save();
  const server = await startServer(t, f.specPath);
  const wants = new Map<string, string>();
  for (const [path, s] of f.byPath) {
    wants.set(path, join(f.dir, `want-${path.replace('/', '_')}`));
    await writeFile(wants.get(path)!, await expected(s));
  }
  // Computing the expected bytes read the sources: drop them from the page cache again (dirty
  // pages of the just-written sources stay, so write them back first).
  await run('sync', []);
  await writeFile('/proc/sys/vm/drop_caches', '3');
  for (const [path, want] of wants) await run('cmp', [join(f.spec.mount, path), want]);
  // The server reads `odd.raw` through a second descriptor opened O_DIRECT (040000 on x86-64).
  const fdDir = `/proc/${server.child.pid}/fd`;
  const directFds = [];
  for (const fd of await readdir(fdDir)) {
    if ((await readlink(join(fdDir, fd)).catch(() => '')) !== odd) continue;
    const flags = parseInt(/flags:\s+(\d+)/.exec(await readFile(`/proc/${server.child.pid}/fdinfo/${fd}`, 'utf8'))![1]!, 8);
    if (flags & 0o40000) directFds.push(fd);
  }
  t.is(directFds.length, 1);
});

test.serial('rescan: a new backup appears and a deleted one disappears within 5 s, without a remount', async (t) => {
  const f = await makeFixture(t);
  const server = await startServer(t, f.specPath);
  const client1 = join(f.spec.mount, 'client1');
  const added: FileSpec = { ...f.spec.files[0]!, name: '230601-0000_Image_C.vhdx', mtime: '2023-06-01T00:00:00Z' };
  f.spec.files.push(added);
  f.byPath.set(`client1/${added.name}`, added);
  await f.save();
  await waitFor('the new file is listed', async () => (await listDir(client1)).includes(added.name), 5000);
  await cmpMounted(f, `client1/${added.name}`);

  f.spec.files = f.spec.files.filter((x) => x.dir !== 'client2');
  await f.save();
  await waitFor('client2 is gone', async () => !(await listDir(f.spec.mount)).includes('client2'), 5000);
  await t.throwsAsync(run('stat', [join(f.spec.mount, 'client2')]));
  t.true(server.child.exitCode === null, 'same server, no remount');
});

test.serial('an open file keeps reading correct bytes after its backup is deleted', async (t) => {
  const f = await makeFixture(t, { rescanMs: 300 });
  await startServer(t, f.specPath);
  const path = 'client2/230520-0200_Image_D.vhdx';
  const want = await expected(f.byPath.get(path)!);
  const out = join(f.dir, 'read-after-delete');
  const reader = spawn('bash', ['-c', 'exec 3<"$1"; echo opened; read _; cat <&3 >"$2"', '_', join(f.spec.mount, path), out], { stdio: ['pipe', 'pipe', 'inherit'] });
  const readerExit = new Promise<number | null>((done) => reader.on('exit', done));
  t.teardown(() => void reader.kill('SIGKILL'));
  await new Promise<void>((done) => reader.stdout.once('data', () => done()));

  await unlink(f.raws[1]!);
  f.spec.files = f.spec.files.filter((x) => x.dir !== 'client2');
  await f.save();
  await waitFor('client2 is gone', async () => !(await listDir(f.spec.mount)).includes('client2'), 5000);
  reader.stdin.end('go\n');
  t.is(await readerExit, 0);
  t.true((await readFile(out)).equals(want));
});

test.serial('writes that would change the tree or what others see are refused: read-only file system', async (t) => {
  const f = await makeFixture(t);
  await startServer(t, f.specPath);
  const file = join(f.spec.mount, 'client1/230521-0143_Image_C.vhd');
  const refused = async (cmd: string): Promise<void> => {
    // The errno's own text, with LC_ALL=C: what the shell prints for EROFS.
    const e = await t.throwsAsync(run('bash', ['-c', `LC_ALL=C; ${cmd}`]));
    t.regex(e!.message, /Read-only file system/, cmd);
  };
  await refused(`echo x > '${file}'`);
  await refused(`echo x >> '${file}'`);
  await refused(`touch '${join(f.spec.mount, 'client1/new')}'`);
  await refused(`rm -f '${file}'`);
  await refused(`mkdir '${join(f.spec.mount, 'new')}'`);
  await refused(`mv '${file}' '${file}.old'`);
  await refused(`chmod 644 '${file}'`);
  // A writer's own truncate changes its private view only (overlay.test.ts).
  await run('truncate', ['-s', '0', file]);
  await cmpMounted(f, 'client1/230521-0143_Image_C.vhd');
});

test.serial('SIGTERM while a disk is open: the server still exits 0, the mount goes, the reader gets an error instead of hanging', async (t) => {
  const f = await makeFixture(t);
  const server = await startServer(t, f.specPath);
  const path = join(f.spec.mount, 'client1/230521-0143_Image_C.vhd');
  const reader = heldReader(t, path, '/dev/null');
  await reader.opened;
  t.is(await stopServer(server), 0);
  t.false(await isMounted(f.spec.mount));
  t.regex(await reader.go(), /Transport endpoint is not connected|No such device|Software caused connection abort/);
});

test.serial('a bad backup fails open with EIO (logged once); a source that shrank gives EIO, not wrong bytes', async (t) => {
  const f = await makeFixture(t);
  f.spec.files[0]!.error = 'the .raw.mbr is garbage';
  await f.save();
  const server = await startServer(t, f.specPath);
  const bad = join(f.spec.mount, 'client1/230520-0143_Image_C.vhdx');
  for (let i = 0; i < 2; i++) t.regex((await t.throwsAsync(run('cat', [bad])))!.message, /Input\/output error/);
  t.is(server.stderr().split('the .raw.mbr is garbage').length - 1, 1, 'logged once');

  await run('truncate', ['-s', `${MiB}`, f.raws[1]!]);
  const shrunk = join(f.spec.mount, 'client2/230520-0200_Image_D.vhdx');
  t.regex((await t.throwsAsync(run('cat', [shrunk])))!.message, /Input\/output error/);
  t.regex(server.stderr(), /short read/);
  t.is(await stopServer(server), 0);
});

test.serial('after kill -9 a restart cleans the stale mount and serves again', async (t) => {
  const f = await makeFixture(t);
  const server = await startServer(t, f.specPath);
  server.child.kill('SIGKILL');
  await server.exited;
  t.true(await isMounted(f.spec.mount), 'the dead server left its mount');
  const again = await startServer(t, f.specPath);
  t.regex(again.stderr(), /stale mount/);
  await cmpMounted(f, 'client1/230520-0143_Image_C.vhdx');
  t.is(await stopServer(again), 0);
  t.false(await isMounted(f.spec.mount));
});

test.serial('reflink mode on btrfs: first open builds the disk, later opens and restarts reuse it, gone backups are pruned', async (t) => {
  requireTool('mkfs.btrfs');
  const fs = await makeLoopFs('btrfs', 256);
  t.teardown(() => fs.cleanup());
  const f = await makeFixture(t, { base: fs.mountpoint, mode: 'reflink', rescanMs: 300 });
  let server = await startServer(t, f.specPath);
  const aligned = 'client1/230520-0143_Image_C.vhdx';
  const cacheFile = join(f.spec.cacheDir!, encodeURIComponent(aligned));
  await t.throwsAsync(stat(cacheFile), undefined, 'nothing is built before the first open');
  t.is((await stat(f.spec.cacheDir!)).mode & 0o777, 0o700);

  await cmpMounted(f, aligned);
  // The first open is served in passthrough while the copy is built.
  await waitFor('the first open has built the cache file', () => builtInCache(cacheFile), 10_000);
  const built = await stat(cacheFile);
  t.is(built.size, f.byPath.get(aligned)!.size);
  // Columns: Total, Exclusive, Set shared, Filename. The 4 MiB partition shares c.raw's extents
  // except the two 4 KiB blocks that the 200-byte piece at MiB + 4000 overwrites.
  const du = (await run('btrfs', ['filesystem', 'du', '-s', '--raw', cacheFile])).trim().split('\n').pop()!.trim().split(/\s+/);
  t.true(Number(du[2]) >= 4 * MiB - 8192, `shared bytes: ${du.join(' ')}`);
  await cmpMounted(f, aligned);
  t.deepEqual([(await stat(cacheFile)).ino, (await stat(cacheFile)).mtimeMs], [built.ino, built.mtimeMs], 'reused by a second open');

  const unaligned = 'client1/230521-0143_Image_C.vhd';
  await cmpMounted(f, unaligned);
  await waitFor('the failed build is logged', async () => /230521-0143_Image_C\.vhd: cannot build a reflinked copy, serving it in passthrough/.test(server.stderr()), 10_000);
  await t.throwsAsync(stat(join(f.spec.cacheDir!, encodeURIComponent(unaligned))));

  t.is(await stopServer(server), 0);
  server = await startServer(t, f.specPath);
  await cmpMounted(f, aligned);
  const reused = await stat(cacheFile);
  t.deepEqual([reused.ino, reused.mtimeMs], [built.ino, built.mtimeMs], 'reused after a restart');

  f.spec.files = f.spec.files.filter((x) => `${x.dir}/${x.name}` !== aligned);
  await f.save();
  await waitFor('the cache file of the deleted backup is removed', () => stat(cacheFile).then(() => false, () => true), 5000);
  t.is(await stopServer(server), 0);
});

test.serial('reflink mode: a built disk is read by the kernel itself (passthrough), even while the server is stopped', async (t) => {
  const fs = await makeLoopFs('btrfs', 256);
  t.teardown(() => fs.cleanup());
  const f = await makeFixture(t, { base: fs.mountpoint, mode: 'reflink' });
  const server = await startServer(t, f.specPath);
  const aligned = 'client1/230520-0143_Image_C.vhdx';
  const path = join(f.spec.mount, aligned);
  const want = join(f.dir, 'want.vhdx');
  await writeFile(want, await expected(f.byPath.get(aligned)!));
  const reader = (): HeldReader => heldReader(t, path, want);

  // The first open is read through the server while the disk is built; a second open while it
  // is held must read the same way (the kernel forbids mixing the two on one inode).
  const first = reader();
  await first.opened;
  await waitFor('the disk is built', () => builtInCache(join(f.spec.cacheDir!, encodeURIComponent(aligned))), 10_000);
  const second = reader();
  await second.opened;
  t.regex(await first.go(), /same/);
  t.regex(await second.go(), /same/);

  t.regex(await readWhileStopped(t, server.child, reader()), /same/);
  t.is(await stopServer(server), 0);
});

test.serial('reflink mode: a changed source makes the next open rebuild', async (t) => {
  const fs = await makeLoopFs('btrfs', 256);
  t.teardown(() => fs.cleanup());
  const f = await makeFixture(t, { base: fs.mountpoint, mode: 'reflink' });
  const path = 'client2/230520-0200_Image_D.vhdx';
  const cacheFile = join(f.spec.cacheDir!, encodeURIComponent(path));
  let server = await startServer(t, f.specPath);
  await cmpMounted(f, path);
  await waitFor('the first open has built the cache file', () => builtInCache(cacheFile), 10_000);
  const first = await stat(cacheFile);
  t.is(await stopServer(server), 0);

  await writeFile(f.raws[1]!, randomBytes(3 * MiB));
  server = await startServer(t, f.specPath);
  await cmpMounted(f, path);
  await waitFor('rebuilt from the new source', async () => (await builtInCache(cacheFile)) && (await stat(cacheFile)).ino !== first.ino, 10_000);
  await cmpMounted(f, path);
  t.is(await stopServer(server), 0);
});

test.serial('auto mode serves in passthrough when the cache cannot share extents with the storage', async (t) => {
  const storage = await makeLoopFs('ext4', 64);
  t.teardown(() => storage.cleanup());
  const f = await makeFixture(t, { base: storage.mountpoint, mode: 'auto' });
  const server = await startServer(t, f.specPath);
  const path = 'client1/230520-0143_Image_C.vhdx';
  await cmpMounted(f, path);
  t.regex(server.stderr(), /auto mode: .* cannot share extents with .*c\.raw: serving that filesystem in passthrough/);
  await t.throwsAsync(stat(join(f.spec.cacheDir!, encodeURIComponent(path))));
  t.is(await stopServer(server), 0);
});

test.serial('a busy mount point is refused with a clear one-line error', async (t) => {
  const f = await makeFixture(t);
  const first = await startServer(t, f.specPath);
  const live = await t.throwsAsync(startServer(t, f.specPath));
  t.regex(live!.message, /is busy: already a mount point \(fuse\.synthvhd\); is another server running there\?/);
  t.is(await stopServer(first), 0);

  await writeFile(join(f.spec.mount, 'stray'), 'x');
  const nonEmpty = await t.throwsAsync(startServer(t, f.specPath));
  t.regex(nonEmpty!.message, /is busy: the folder is not empty/);
});
