// `npm run demo [-- --port N]`: a whole synthvhd server on this machine, to look at over SMB.
// As root: a sparse btrfs loop filesystem with a demo UrBackup storage (a GPT disk with an ESP and
// an NTFS C:, and an MBR disk), `synthvhd serve` on it, and a private smbd on 127.0.0.1 with the
// shipped share and a demo user. Runs until Ctrl-C, then removes everything it started.
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { whichTool } from '../src/doctor/tools.js';
import { makeLoopFs } from '../test/helpers/loopfs.js';
import { run } from '../test/helpers/run.js';
import { addSambaUser, startSmbd } from '../test/helpers/samba-server.js';
import { biosMbr, uefiGpt } from '../test/helpers/scenarios.js';

const CLI = new URL('../src/cli/main.cjs', import.meta.url).pathname;
const DEMO_USER = 'synthvhd-demo';
const DEFAULT_PORT = 4450;
const TOOLS = ['smbd', 'smbclient', 'smbpasswd', 'useradd', 'mkfs.btrfs', 'btrfs', 'losetup', 'sgdisk', 'mkntfs', 'mkfs.vfat', 'mcopy'];

class DemoError extends Error {
  override name = 'DemoError';
}

const say = (s: string): void => void process.stdout.write(`${s}\n`);
const step = (s: string): void => say(`• ${s}`);

function portArg(argv: readonly string[]): number {
  const i = argv.indexOf('--port');
  if (i < 0) return DEFAULT_PORT;
  const port = Number(argv[i + 1]);
  if (!Number.isInteger(port) || port < 1024 || port > 65535) throw new DemoError(`--port ${argv[i + 1]}: want an unprivileged port (1024-65535)`);
  return port;
}

/** Things to undo, newest first. */
const undo: { what: string; fn: () => Promise<unknown> }[] = [];

async function cleanup(): Promise<void> {
  while (undo.length) {
    const { what, fn } = undo.pop()!;
    await fn().then(
      () => say(`  removed ${what}`),
      (e: Error) => say(`  could not remove ${what}: ${e.message}`),
    );
  }
}

/** `synthvhd serve` in a process group of its own (Ctrl-C reaches only the demo, which stops it in order). */
async function startServe(storage: string, mount: string, cacheDir: string, log: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--storage', storage, '--mount', mount, '--allow-other', '--cache-dir', cacheDir], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr!.pipe(createWriteStream(log));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  undo.push({
    what: `synthvhd serve (pid ${child.pid}) and its mount ${mount}`,
    fn: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      await run('umount', ['-l', mount]).catch(() => undefined);
    },
  });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      err += s;
      if (/serving \d+ files at/.test(err)) resolve();
    });
    child.once('exit', (code) => reject(new DemoError(`synthvhd serve exited (${code}) before mounting: ${err.trim()}`)));
  });
  return child;
}

async function main(): Promise<void> {
  const port = portArg(process.argv.slice(2));
  if (process.getuid?.() !== 0) {
    throw new DemoError('the demo needs root: it makes a btrfs loop filesystem, mounts FUSE for other users and runs smbd. Run: sudo npm run demo');
  }
  const missing = [];
  for (const t of TOOLS) if (!(await whichTool(t))) missing.push(t);
  if (missing.length) throw new DemoError(`missing tools: ${missing.join(', ')}; run: bash scripts/setup-system.sh`);

  step('creating a sparse 1 GiB btrfs filesystem on a loop device');
  const loop = await makeLoopFs('btrfs', 1024);
  undo.push({ what: `loop device ${loop.device} and its filesystem at ${loop.mountpoint}`, fn: () => loop.cleanup() });
  // smbd opens the share as the demo user: every folder above the mount must be searchable.
  const work = await mkdtemp(join(tmpdir(), 'synthvhd-demo-'));
  await chmod(work, 0o755);
  undo.push({ what: `temp folder ${work}`, fn: () => rm(work, { recursive: true, force: true }) });
  // The mount shows each disk to whoever could read its files (README "Who may read the disks"):
  // the demo storage is open to every user (mkdtemp made the loop filesystem's folder 0700).
  await chmod(dirname(loop.mountpoint), 0o755);
  const storage = join(loop.mountpoint, 'urbackup');
  const disks = join(loop.mountpoint, 'disks');
  await mkdir(storage);
  await mkdir(disks);
  const ctx = { storage, workDir: disks, kind: 'btrfs' as const };

  step('building a GPT disk (ESP, MSR, NTFS C:, Recovery) and backing up its ESP and C: as UrBackup images');
  await uefiGpt(ctx);
  step('building an MBR disk (System Reserved, NTFS C:) and backing up both as UrBackup images');
  await biosMbr(ctx);

  step('mounting the virtual disks with synthvhd serve --allow-other');
  const mount = join(work, 'mnt');
  const serveLog = join(work, 'serve.log');
  const serve = await startServe(storage, mount, join(loop.mountpoint, 'cache'), serveLog);

  step(`starting smbd on 127.0.0.1:${port} with the shipped samba-conf/smb.conf`);
  const smbd = await startSmbd({ sharePath: mount, port, dir: join(work, 'samba') }).catch((e: Error) => {
    throw new DemoError(`${e.message}; is port ${port} taken? Try: npm run demo -- --port ${port + 1}`);
  });
  step(`adding the Samba user ${DEMO_USER}`);
  const user = await addSambaUser(smbd.conf, DEMO_USER).catch(async (e: Error) => {
    await smbd.stop();
    throw e;
  });
  // Undone after smbd has stopped: userdel refuses a user that smbd still runs as.
  undo.push({ what: `demo user ${DEMO_USER}`, fn: () => user.remove() });
  undo.push({ what: `smbd (pid ${smbd.pid})`, fn: () => smbd.stop() });

  // serve is another process, so reading its mount from here is safe.
  const files: string[] = [];
  for (const client of (await readdir(mount)).sort()) for (const f of (await readdir(join(mount, client))).sort()) files.push(`${client}/${f}`);
  const vhd = files.find((f) => f.endsWith('.vhd'))!;
  const smbclient = `smbclient //127.0.0.1/backups -p ${port} -U ${DEMO_USER}%${user.password}`;
  const download = join(tmpdir(), vhd.split('/').pop()!);
  say('');
  say(`synthvhd demo is running. The share \\\\127.0.0.1\\backups (port ${port}) holds:`);
  for (const f of files) say(`  ${f}`);
  say('');
  say('look with:');
  say(`  ${smbclient} -c 'ls'`);
  say(`  ${smbclient} -c 'recurse; ls'`);
  say(`  ${smbclient} -c 'get ${vhd} ${download}'`);
  say(`  then: qemu-img info -f vpc ${download}   (and rm ${download})`);
  say('');
  say(`mount point: ${mount}`);
  say(`storage: ${storage}`);
  say(`loop device: ${loop.device}`);
  say(`processes: serve ${serve.pid}, smbd ${smbd.pid}`);
  say(`logs: ${serveLog}, ${smbd.logDir}`);
  say('Ctrl-C stops smbd and serve and removes the mount, the loop device, the demo user and the temp folders.');
}

let stopping = false;
async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    say('stopping the demo:');
    await cleanup();
  }
  process.exit(code);
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(0));
// Keeps the process alive until a signal; setup steps in flight when one arrives are undone too.
const alive = setInterval(() => undefined, 1 << 30);
main().catch((e: Error) => {
  clearInterval(alive);
  process.stderr.write(`demo: ${e instanceof DemoError ? e.message : (e.stack ?? e.message)}\n`);
  void stop(1);
});
