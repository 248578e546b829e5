// `synthvhd serve` as a child process: started, waited for until mounted, stopped.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI } from './cli.js';
import { run } from './run.js';

export interface ServeProcess {
  readonly proc: ChildProcess;
  /** Everything it printed on stderr so far. */
  log(): string;
  /** SIGTERM, then waits for the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `synthvhd serve ARGS` and resolves once it says it is serving. */
export function startServe(args: readonly string[], timeoutMs = 30_000, env: NodeJS.ProcessEnv = process.env): Promise<ServeProcess> {
  const proc = spawn(process.execPath, [CLI, 'serve', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const handle: ServeProcess = {
    proc,
    log: () => stderr,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`serve did not mount within ${timeoutMs} ms:\n${stderr}`));
    }, timeoutMs);
    proc.stderr!.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (/serving \d+ files at/.test(stderr)) {
        clearTimeout(timer);
        resolve(handle);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code}) before mounting:\n${stderr}`));
    });
  });
}

/** Lazily unmounts whatever is left at `mountpoint` (after a killed server). */
export async function forceUnmount(mountpoint: string): Promise<void> {
  await run('fusermount', ['-u', '-z', mountpoint]).catch(() => run('umount', ['-l', mountpoint]).catch(() => undefined));
}

/** Polls `check` (run in the test process, never touching the mount synchronously) until it holds. */
export async function eventually(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return check();
}

/** The servers and mount points one test file starts, for a single teardown. */
export class ServeTracker {
  private readonly servers: ServeProcess[] = [];
  private readonly mounts: string[] = [];

  /** A fresh, empty mount point `name` under `parent`. */
  async mountpoint(parent: string, name: string): Promise<string> {
    const m = join(parent, name);
    await mkdir(m, { recursive: true });
    this.mounts.push(m);
    return m;
  }

  async serve(args: readonly string[], timeoutMs?: number, env?: NodeJS.ProcessEnv): Promise<ServeProcess> {
    const s = await startServe(args, timeoutMs, env);
    this.servers.push(s);
    return s;
  }

  async cleanup(): Promise<void> {
    for (const s of this.servers) await s.stop();
    for (const m of this.mounts) await forceUnmount(m);
  }
}
