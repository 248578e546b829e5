// Soak: 16 concurrent readers of random ranges of several disks through FUSE for a bounded time,
// every byte checked against `build` output; the server's memory stays flat and every descriptor
// it holds on the storage is read-only.
import { createHash, randomInt } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { synthvhd } from './helpers/cli.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { run } from './helpers/run.js';
import * as sc from './helpers/scenarios.js';
import { forceUnmount, startServe } from './helpers/serve-process.js';
import { treeFingerprint } from './helpers/tree-hash.js';

const READERS = 16;
const SOAK_MS = 20_000;
/** RSS may grow this much from the warmed-up server to the end (V8 heap noise), not with the work done. */
const RSS_TOLERANCE = 48 * 1024 * 1024;
const O_ACCMODE = 3;

let fs: LoopFs;
let work: string;
let storage: string;
const mnt = (): string => join(work, 'mnt');

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-soak-'));
  fs = await makeLoopFs('btrfs', 2048);
  storage = join(fs.mountpoint, 'storage');
  await mkdir(storage);
  await mkdir(mnt());
  const ctx = { storage, workDir: work, kind: 'btrfs' as const };
  await sc.uefiGpt(ctx);
  await sc.biosMbr(ctx);
  await sc.gpt4Kn(ctx);
  await sc.legacyMbr(ctx);
});

test.after.always(async () => {
  await forceUnmount(mnt());
  await fs?.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

async function vmRss(pid: number): Promise<number> {
  const kb = /^VmRSS:\s+(\d+) kB$/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

/** [fd target, access mode] of every descriptor of `pid` that points into `dir`. */
async function descriptorsInto(pid: number, dir: string): Promise<[string, number][]> {
  const out: [string, number][] = [];
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    if (!target.startsWith(dir)) continue;
    const flags = /^flags:\s+([0-7]+)$/m.exec(await readFile(`/proc/${pid}/fdinfo/${fd}`, 'utf8').catch(() => ''))?.[1];
    if (flags !== undefined) out.push([target, parseInt(flags, 8) & O_ACCMODE]);
  }
  return out;
}

test.serial(`${READERS} readers for ${SOAK_MS / 1000} s over FUSE: every byte right, memory flat, storage only read`, async (t) => {
  const before = await treeFingerprint(storage);
  const srv = await startServe(['--storage', storage, '--mount', mnt(), '--mode', 'passthrough']);
  const pid = srv.proc.pid!;
  // Reference: `build` output of every disk file the mount shows (beside them: the image folders).
  const files: { path: string; ref: string; size: number }[] = [];
  for (const client of await readdir(mnt())) {
    for (const name of (await readdir(join(mnt(), client))).filter((n) => /\.vhdx?$/.test(n))) {
      const folder = (await readdir(join(storage, client))).find((f) => name.startsWith(f))!;
      const ref = join(work, `${client}-${name}`);
      const r = await synthvhd(['build', join(storage, client, folder), '-o', ref]);
      t.is(r.code, 0, r.stderr);
      const fh = await open(ref, 'r');
      files.push({ path: join(mnt(), client, name), ref, size: (await fh.stat()).size });
      await fh.close();
    }
  }
  t.true(files.length >= 7, files.map((f) => f.path).join(' '));

  let reads = 0;
  let bytes = 0;
  const mismatches: string[] = [];
  const deadline = Date.now() + SOAK_MS;
  const reader = async (): Promise<void> => {
    const refs = new Map<string, Awaited<ReturnType<typeof open>>>();
    try {
      while (Date.now() < deadline) {
        const f = files[randomInt(files.length)]!;
        // Random 512-byte-aligned ranges up to 1 MiB, including the container's head and tail.
        const count = randomInt(1, 2048);
        const skip = randomInt(0, Math.floor(f.size / 512) - count);
        const got = (await run('sh', ['-c', `dd if='${f.path}' bs=512 skip=${skip} count=${count} status=none | sha256sum`])).split(' ')[0];
        let ref = refs.get(f.ref);
        if (!ref) refs.set(f.ref, (ref = await open(f.ref, 'r')));
        const want = Buffer.alloc(count * 512);
        await ref.read(want, 0, want.length, skip * 512);
        if (got !== createHash('sha256').update(want).digest('hex')) mismatches.push(`${f.path} @${skip * 512}+${count * 512}`);
        reads++;
        bytes += want.length;
      }
    } finally {
      for (const r of refs.values()) await r.close();
    }
  };
  // The kernel keeps the virtual files in its page cache; drop it now and then so reads reach the server.
  const dropper = (async () => {
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 3000));
      await run('sh', ['-c', 'echo 1 > /proc/sys/vm/drop_caches']).catch(() => undefined);
    }
  })();
  const warm = new Promise<number>((r) => setTimeout(() => void vmRss(pid).then(r), 3000));
  const fdCheck = new Promise<[string, number][]>((r) => setTimeout(() => void descriptorsInto(pid, storage).then(r), SOAK_MS / 2));
  await Promise.all([...Array.from({ length: READERS }, reader), dropper]);
  const rssWarm = await warm;
  const rssEnd = await vmRss(pid);
  t.deepEqual(mismatches, []);
  t.true(reads > READERS * 5, `${reads} reads`);
  t.log(`${reads} reads, ${(bytes / 2 ** 20).toFixed(0)} MiB; VmRSS ${(rssWarm / 2 ** 20).toFixed(1)} → ${(rssEnd / 2 ** 20).toFixed(1)} MiB`);
  t.true(rssEnd - rssWarm < RSS_TOLERANCE, `VmRSS grew from ${rssWarm} to ${rssEnd}`);
  const fds = await fdCheck;
  t.true(fds.length > 0, 'the server held descriptors on the storage mid-soak');
  t.deepEqual(fds.filter(([, mode]) => mode !== 0), [], 'every storage descriptor is O_RDONLY');
  t.is(await srv.stop(), 0);
  t.deepEqual(await treeFingerprint(storage), before);
});
