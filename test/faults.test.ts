// Faults under a running serve: the cache filesystem full during a reflink build, the storage
// unmounted and mounted again. (kill -9 + restart and a backup deleted while read: serve.test.ts.)
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { synthvhd } from './helpers/cli.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { run } from './helpers/run.js';
import * as sc from './helpers/scenarios.js';
import { type ServeProcess, eventually, forceUnmount, startServe } from './helpers/serve-process.js';

let work: string;
const filesystems: LoopFs[] = [];
const servers: ServeProcess[] = [];
const mounts: string[] = [];

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-faults-'));
});

test.after.always(async () => {
  for (const s of servers) await s.stop();
  for (const m of mounts) await forceUnmount(m);
  for (const f of filesystems) await f.cleanup();
  if (work) await rm(work, { recursive: true, force: true });
});

/** A btrfs storage with one GRUB/ext4 backup, its `build` output, and a mount point. */
async function setup(name: string, sizeMiB: number): Promise<{ fs: LoopFs; storage: string; vhd: string; ref: string; m: string }> {
  const fs = await makeLoopFs('btrfs', sizeMiB);
  filesystems.push(fs);
  const storage = join(fs.mountpoint, 'storage');
  await mkdir(storage);
  const grub = await sc.grubMbr({ storage, workDir: await mkdtemp(join(work, `${name}-`)), kind: 'btrfs' });
  const folder = grub.images._dev_sda1!.folder;
  const ref = join(work, `${name}.vhd`);
  const r = await synthvhd(['build', folder, '-o', ref, '--reflink', 'never']);
  if (r.code !== 0) throw new Error(r.stderr);
  const m = join(work, `mnt-${name}`);
  await mkdir(m);
  mounts.push(m);
  return { fs, storage, vhd: `${grub.client}/${folder.split('/').at(-1)}.vhd`, ref, m };
}

async function serve(args: string[]): Promise<ServeProcess> {
  const s = await startServe(args);
  servers.push(s);
  return s;
}

test.serial('cache filesystem full during a reflink build: served in passthrough, no partial file left', async (t) => {
  // The cache must share the storage's filesystem to clone at all, so that filesystem is the one filled.
  const { fs, storage, vhd, ref, m } = await setup('full', 512);
  const cache = join(fs.mountpoint, 'cache');
  await run('sh', ['-c', `dd if=/dev/urandom of='${fs.mountpoint}/filler' bs=1M status=none 2>/dev/null; sync; true`]);
  t.regex(await run('sh', ['-c', `dd if=/dev/zero of='${fs.mountpoint}/probe' bs=1M count=4 2>&1; sync; true`]), /No space left/);
  await rm(join(fs.mountpoint, 'probe'), { force: true });
  const srv = await serve(['--storage', storage, '--mount', m, '--mode', 'reflink', '--cache-dir', cache]);
  await run('cmp', [join(m, vhd), ref]);
  // The first open is served in passthrough while the build runs behind it, so the build's
  // failure may be logged after that read has finished.
  const fellBack = /cannot build a reflinked copy, serving it in passthrough: .*(ENOSPC|No space)/;
  t.true(await eventually(async () => fellBack.test(srv.log()), 10_000), srv.log());
  // Only the writers' overlay folder, which holds no names (docs/overlays.md §2).
  t.deepEqual(await readdir(cache), ['overlays'], 'no partial build, no sidecar');
  // A second open does not retry the build: still served, still nothing in the cache.
  await run('cmp', [join(m, vhd), ref]);
  t.deepEqual(await readdir(cache), ['overlays']);
  t.is(await srv.stop(), 0);
});

test.serial('storage unmounted under a running serve: EIO, no crash; it recovers when the storage is back', async (t) => {
  const { fs, storage, vhd, ref, m } = await setup('umount', 512);
  const srv = await serve(['--storage', storage, '--mount', m, '--mode', 'passthrough']);
  const other = vhd.replace(/\.vhd$/, '.vhdx');
  await run('umount', ['-l', fs.mountpoint]);
  await new Promise((r) => setTimeout(r, 2500)); // at least one rescan without the storage
  const r = await run('sh', ['-c', `{ cat '${join(m, other)}' > /dev/null; } 2>&1; echo rc=$?`]);
  t.regex(r, /Input\/output error\nrc=1/, srv.log());
  t.is(srv.proc.exitCode, null, 'still running');
  await run('find', [m, '-maxdepth', '2']); // the mount answers (inside an image folder, its volume is gone too: EIO)
  await run('mount', [fs.device, fs.mountpoint]);
  t.true(await eventually(async () => (await run('cmp', [join(m, vhd), ref]).then(() => true, () => false)), 10_000), 'reads recover');
  await run('sh', ['-c', `cat '${join(m, other)}' > /dev/null`]);
  await new Promise((r) => setTimeout(r, 4500));
  const failures = srv.log().split('\n').filter((l) => /rescan failed|cannot open/.test(l));
  t.true(failures.length >= 1 && failures.length <= 2, failures.join('\n'));
  t.is(await srv.stop(), 0);
});
