// `npm run demo` end to end: start it, list the share over SMB with the command it prints, Ctrl-C,
// and nothing it started is left: no mount, no smbd or serve, no loop device, no demo user.
import test from 'ava';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { run, requireTool } from './helpers/run.js';
import { freePort } from './helpers/samba-server.js';

const DEMO = new URL('../scripts/demo.js', import.meta.url).pathname;
const DEMO_USER = 'synthvhd-demo';

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function mounted(path: string): Promise<boolean> {
  return (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').some((l) => l.split(' ')[4] === path);
}

/** Resolves with the demo's output once `until` matches it; rejects if the demo exits first. */
function outputUntil(child: ChildProcess, until: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      out += s;
      if (until.test(out)) resolve(out);
    });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.once('exit', (code) => reject(new Error(`the demo exited (${code}) early:\n${out}`)));
  });
}

test('the demo serves the share until Ctrl-C and then leaves nothing behind', async (t) => {
  for (const tool of ['smbd', 'smbclient', 'losetup']) requireTool(tool);
  const userBefore = await run('id', ['-u', DEMO_USER]).then(() => true, () => false);
  const port = await freePort();
  const demo = spawn(process.execPath, [DEMO, '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((r) => demo.once('exit', (code) => r(code)));
  t.teardown(async () => {
    // Only when an assertion failed before the Ctrl-C below: the demo cleans up after itself.
    if (demo.exitCode === null && demo.signalCode === null) {
      demo.kill('SIGINT');
      await exited;
    }
  });
  const out = await outputUntil(demo, /Ctrl-C stops/);
  const field = (name: string): string => {
    const value = new RegExp(`^${name}: (.+)$`, 'm').exec(out)?.[1];
    if (!value) throw new Error(`no "${name}:" line in\n${out}`);
    return value;
  };
  const lookWith = out.slice(out.indexOf('look with:'));
  const ls = /^ {2}(smbclient .* -c 'ls')$/m.exec(lookWith)?.[1];
  t.truthy(ls, out);
  const [mount, storage, device] = [field('mount point'), field('storage'), field('loop device')];
  const pids = /^processes: serve (\d+), smbd (\d+)$/m.exec(out)!.slice(1).map(Number);
  t.true(await mounted(mount));
  t.true(pids.every(alive));

  const listing = await run('sh', ['-c', ls!]);
  t.regex(listing, /^ {2}uefi-pc +D /m);
  t.regex(listing, /^ {2}bios-pc +D /m);
  const recurse = await run('sh', ['-c', /^ {2}(smbclient .* -c 'recurse; ls')$/m.exec(lookWith)![1]!]);
  t.regex(recurse, /240101-1200_Image_C\.vhdx +N +\d+/);

  demo.kill('SIGINT');
  t.is(await exited, 0, out);
  t.false(await mounted(mount), 'the FUSE mount is gone');
  t.false(await mounted(storage.replace(/\/urbackup$/, '')), 'the loop filesystem is unmounted');
  t.false(pids.some(alive), 'serve and smbd have exited');
  t.notRegex(await run('losetup', ['-l', '-n', '-O', 'NAME,BACK-FILE']), new RegExp(storage.replace(/\/mnt\/urbackup$/, '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), `${device} is detached`);
  t.is(await run('id', ['-u', DEMO_USER]).then(() => true, () => false), userBefore, 'the demo user is gone again');
});
