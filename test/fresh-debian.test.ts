// The README's set-up commands start with scripts/run, which must bring a Node.js ≥ 20 and npm
// onto a fresh Debian 12, whose own Node.js is 18 and which has no npm at all.
import test from 'ava';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_CACHE } from './helpers/debian-cache.js';
import { bookwormMinbase, copyTree, inChroot } from './helpers/debian-root.js';

const ROOT = new URL('../../', import.meta.url).pathname;
/** Its own apt download cache: package.test's chroots lock theirs while they install. */
const APT_ARCHIVES = join(TEST_CACHE, 'apt-archives-fresh-debian');

test('scripts/run brings Node.js ≥ 20 and npm to a clean bookworm minbase', async (t) => {
  t.timeout(20 * 60_000);
  const tree = await mkdtemp(join(tmpdir(), 'synthvhd-fresh-'));
  t.teardown(() => rm(tree, { recursive: true, force: true }));
  await copyTree(await bookwormMinbase(), tree);
  await mkdir(APT_ARCHIVES, { recursive: true });
  for (const p of ['scripts/run', 'package.json', 'packaging/runtime/package.json', 'packaging/runtime/package-lock.json']) {
    await cp(join(ROOT, p), join(tree, 'src', p), { recursive: true });
  }
  // This machine reaches the npm registry through a proxy whose CA it trusts locally: so does the
  // tree (a real fresh Debian trusts the registry's own certificate through ca-certificates).
  await cp('/usr/local/share/ca-certificates', join(tree, 'usr/local/share/ca-certificates'), { recursive: true });
  const chroot = (script: string) => inChroot(tree, script, { '/var/cache/apt/archives': APT_ARCHIVES });
  t.not((await chroot('command -v node || command -v npm')).code, 0, 'the minbase has no Node.js');
  const r = await chroot(`bash /src/scripts/run node -p 'process.versions.node + " " + require("child_process").execFileSync("npm", ["--version"])'`);
  t.is(r.code, 0, r.stderr + r.stdout);
  const [node, npm] = r.stdout.trim().split(/\s+/);
  t.true(Number(node!.split('.')[0]) >= 20, `node ${node}`);
  t.regex(npm ?? '', /^\d+\.\d+\.\d+$/);
  const usage = await chroot('bash /src/scripts/run nonsense');
  t.is(usage.code, 2, usage.stderr);
});
