// A private smbd on loopback for the benchmark: its own port, directories and user database.
import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { shareSection } from '../src/samba/share-section.js';
import { run } from '../test/helpers/run.js';
import { BenchError, timed } from './bench-system.js';

const USER = 'root';
const PASSWORD = 'synthvhd-bench';
const START_WAIT_MS = 30_000;

export interface Share {
  readonly name: string;
  readonly path: string;
}

export interface SambaServer {
  readonly port: number;
  /** Seconds to download `file` (relative to the share) with smbclient, discarding the bytes. */
  download(share: string, file: string): Promise<number>;
  stop(): Promise<void>;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      done(true);
    });
    s.once('error', () => done(false));
  });
}

/** The global part of samba-conf/smb.conf that affects reads, plus private state in `dir`. */
function globalSection(dir: string, port: number): string {
  const lines = [
    '[global]',
    'server role = standalone server',
    `smb ports = ${port}`,
    'interfaces = 127.0.0.1',
    'bind interfaces only = yes',
    'disable netbios = yes',
    ...['private dir', 'lock directory', 'state directory', 'cache directory', 'pid directory', 'ncalrpc dir'].map((k) => `${k} = ${join(dir, k.split(' ')[0]!)}`),
    `passdb backend = tdbsam:${join(dir, 'passdb.tdb')}`,
    `log file = ${join(dir, 'log.%m')}`,
    'server min protocol = SMB2_10',
    'map to guest = never',
    'load printers = no',
    'printing = bsd',
    'printcap name = /dev/null',
    'disable spoolss = yes',
    'aio read size = 1',
    'smb2 leases = yes',
  ];
  return lines.map((l, i) => (i === 0 ? l : `   ${l}`)).join('\n') + '\n';
}

/** Starts smbd serving `shares`, each with synthvhd's share settings, on 127.0.0.1:port. */
export async function startSamba(shares: readonly Share[], port: number): Promise<SambaServer> {
  const dir = await mkdtemp(join(tmpdir(), 'synthvhd-bench-smb-'));
  for (const d of ['private', 'lock', 'state', 'cache', 'pid', 'ncalrpc']) await mkdir(join(dir, d));
  const conf = join(dir, 'smb.conf');
  await writeFile(conf, [globalSection(dir, port), ...shares.map((s) => shareSection(s))].join('\n'));
  let child: ChildProcess | undefined;
  const stop = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((done) => child!.once('exit', done));
      child.kill('SIGTERM');
      await gone;
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await run('pdbedit', ['-s', conf, '-a', '-u', USER, '-t'], { input: `${PASSWORD}\n${PASSWORD}\n` });
    // Its own process group: smbd ends its whole group when it stops, which must not be ours.
    child = spawn('smbd', ['--foreground', '--no-process-group', '-s', conf], { stdio: 'ignore', detached: true });
    const deadline = Date.now() + START_WAIT_MS;
    while (!(await portOpen(port))) {
      if (child.exitCode !== null) throw new BenchError(`smbd exited (${child.exitCode}) at start; see ${dir}/log.smbd`);
      if (Date.now() > deadline) throw new BenchError(`smbd did not listen on 127.0.0.1:${port} within ${START_WAIT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    port,
    download: (share, file) =>
      timed(() => run('smbclient', [`//127.0.0.1/${share}`, '-p', String(port), '-U', `${USER}%${PASSWORD}`, '-c', `get "${file}" /dev/null`])),
    stop,
  };
}
