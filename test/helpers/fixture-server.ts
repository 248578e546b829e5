// A serve-fixture.ts process (a FUSE mount of a fixture spec) for a test: started, waited for until
// it has mounted, and killed at the test's end.
import type { ExecutionContext } from 'ava';
import { type ChildProcess, spawn } from 'node:child_process';

const FIXTURE = new URL('./serve-fixture.js', import.meta.url).pathname;

export interface Server {
  readonly child: ChildProcess;
  stderr(): string;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
}

export async function startServer(t: ExecutionContext, specPath: string, env: NodeJS.ProcessEnv = process.env): Promise<Server> {
  const child = spawn(process.execPath, [FIXTURE, specPath], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let err = '';
  let out = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  await new Promise<void>((ready, fail) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready\n')) ready();
    });
    void exited.then((code) => fail(new Error(`server exited (${code}) before mounting: ${err}`)));
  });
  return { child, stderr: () => err, exited };
}
