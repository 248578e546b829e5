// A private smbd on 127.0.0.1 serving the shipped samba-conf/smb.conf, for the Samba tests and
// `npm run demo`: its own port, state dirs, passdb and log, so it never touches the system's Samba.
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { dirname, join } from 'node:path';
import type { Netns } from './netns.js';
import { run } from './run.js';

/** The shipped configuration, from dist/test/helpers/ back to the checkout. */
export const SHIPPED_SMB_CONF = new URL('../../../samba-conf/smb.conf', import.meta.url).pathname;
/** The share path the shipped smb.conf exports (the systemd unit's mount point). */
export const SHIPPED_SHARE_PATH = '/srv/synthvhd';

export class SambaServerError extends Error {
  override name = 'SambaServerError';
}

export interface PrivateConfOptions {
  /** What replaces the shipped share path. */
  readonly sharePath: string;
  readonly port: number;
  /** Holds the private, lock, state, cache, pid and log folders. */
  readonly dir: string;
}

/**
 * The shipped smb.conf with the share path substituted and, at the end of [global], the settings
 * that make it a private loopback server (later lines win in Samba).
 */
export function privateSmbConf(shipped: string, o: PrivateConfOptions): string {
  if (!shipped.includes(`path = ${SHIPPED_SHARE_PATH}\n`)) throw new SambaServerError(`${SHIPPED_SMB_CONF}: no share with path = ${SHIPPED_SHARE_PATH}`);
  const d = (name: string): string => join(o.dir, name);
  const local = [
    '   # --- a private loopback server (test/helpers/samba-server.ts) ---',
    `   smb ports = ${o.port}`,
    '   interfaces = 127.0.0.1',
    '   bind interfaces only = yes',
    '   disable netbios = yes',
    `   private dir = ${d('private')}`,
    `   passdb backend = tdbsam:${d('private')}/passdb.tdb`,
    `   lock directory = ${d('lock')}`,
    `   state directory = ${d('state')}`,
    `   cache directory = ${d('cache')}`,
    `   pid directory = ${d('pid')}`,
    `   ncalrpc dir = ${d('lock')}/ncalrpc`,
    `   usershare path = ${d('usershares')}`,
    `   log file = ${d('log')}/log.%m`,
    '',
  ].join('\n');
  const withPath = shipped.replace(`path = ${SHIPPED_SHARE_PATH}\n`, `path = ${o.sharePath}\n`);
  const share = withPath.search(/^\[(?!global\])/m);
  if (share < 0) throw new SambaServerError(`${SHIPPED_SMB_CONF}: no share section after [global]`);
  return `${withPath.slice(0, share)}${local}\n${withPath.slice(share)}`;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((res, rej) => srv.once('error', rej).listen(0, '127.0.0.1', res));
  const { port } = srv.address() as { port: number };
  await new Promise((res) => srv.close(res));
  return port;
}

async function accepts(port: number, netns: Netns | undefined): Promise<boolean> {
  if (netns) {
    // Node cannot connect inside another namespace: bash's /dev/tcp can, and tells by its exit code.
    const [cmd, ...args] = netns.exec('bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`]);
    return run(cmd!, args).then(() => true, () => false);
  }
  return new Promise((res) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), res(true)));
    s.once('error', () => res(false));
  });
}

export interface Smbd {
  readonly conf: string;
  readonly port: number;
  readonly pid: number;
  readonly logDir: string;
  /** Stops smbd and every child it forked (they share its process group). */
  stop(): Promise<void>;
}

/**
 * Starts smbd in the foreground, in a process group of its own, and waits until it listens.
 * `extraShares` is appended to the configuration; with `netns` it runs inside that namespace.
 */
export async function startSmbd(o: { sharePath: string; port: number; dir: string; extraShares?: string; netns?: Netns }): Promise<Smbd> {
  // Like Debian's /var/lib/samba: only private/ is closed. smbd children switch to the connected
  // user, and one that cannot read lock/msg.lock takes live processes for dead and "cleans up"
  // their share-mode entries (then panics: "Could not store share mode data").
  for (const sub of ['lock', 'state', 'cache', 'pid', 'log', 'usershares']) await mkdir(join(o.dir, sub), { recursive: true, mode: 0o755 });
  await mkdir(join(o.dir, 'private'), { recursive: true, mode: 0o700 });
  // ...and they must reach it: the caller's temp folder (mkdtemp makes it 0700) becomes traversable.
  await chmod(o.dir, 0o755);
  await chmod(dirname(o.dir), 0o711);
  const conf = join(o.dir, 'smb.conf');
  await writeFile(conf, `${privateSmbConf(await readFile(SHIPPED_SMB_CONF, 'utf8'), o)}\n${o.extraShares ?? ''}`);
  const argv = ['--foreground', '--no-process-group', '-s', conf];
  // `ip netns exec` execs smbd itself: the pid and process group stay smbd's.
  const [cmd, ...args] = o.netns ? o.netns.exec('smbd', argv) : ['smbd', ...argv];
  const child: ChildProcess = spawn(cmd!, args, { detached: true, stdio: 'ignore' });
  let exited = false;
  const exit = new Promise<void>((res) => child.once('exit', () => ((exited = true), res())));
  const pid = child.pid!;
  const stop = async (): Promise<void> => {
    if (exited) return;
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      return;
    }
    const timer = setTimeout(() => void (exited || process.kill(-pid, 'SIGKILL')), 5000);
    await exit;
    clearTimeout(timer);
  };
  for (let i = 0; i < 100 && !exited; i++) {
    if (await accepts(o.port, o.netns)) return { conf, port: o.port, pid, logDir: join(o.dir, 'log'), stop };
    await new Promise((r) => setTimeout(r, 100));
  }
  await stop();
  throw new SambaServerError(`smbd -s ${conf} did not listen on 127.0.0.1:${o.port} (see ${join(o.dir, 'log')})`);
}

export interface SambaUser {
  readonly name: string;
  readonly password: string;
  /** Removes the unix user again if this call created it (the passdb goes with smbd's folder). */
  remove(): Promise<void>;
}

/** A Samba user in conf's own passdb, backed by a system unix user without home or shell. */
export async function addSambaUser(conf: string, name: string, password = randomBytes(9).toString('base64url')): Promise<SambaUser> {
  const exists = await run('id', ['-u', name]).then(() => true, () => false);
  if (!exists) await run('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', name]);
  try {
    await run('smbpasswd', ['-c', conf, '-a', '-s', name], { input: `${password}\n${password}\n` });
  } catch (e) {
    if (!exists) await run('userdel', [name]).catch(() => undefined);
    throw e;
  }
  return { name, password, remove: async () => void (exists || (await run('userdel', [name]))) };
}
