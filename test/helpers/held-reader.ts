// A reader in a child process that opens a file of the mount first and reads it only when told
// to: the tests stop the server in between and see whether the kernel reads the file itself.
import type { ExecutionContext } from 'ava';
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';

export interface HeldReader {
  /** Resolves once the file is open. */
  readonly opened: Promise<void>;
  /** Reads through the held descriptor and compares; resolves with the output ("same" on success). */
  go(): Promise<string>;
}

/** A child that opens `path` first and, when told to, compares what it reads through that descriptor with `want`. */
export function heldReader(t: ExecutionContext, path: string, want: string): HeldReader {
  const child = spawn('bash', ['-c', 'exec 3<"$1" && echo opened && read go && cmp - "$2" <&3 && echo same', 'reader', path, want], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<string>((done) => child.on('exit', () => done(out)));
  const opened = new Promise<void>((done, fail) => {
    child.stdout.on('data', () => out.includes('opened') && done());
    void exited.then(() => fail(new Error(`the reader could not open ${path}: ${out}`)));
  });
  return { opened, go: () => (child.stdin.end('go\n'), exited) };
}

/**
 * Reads through `reader`'s held descriptor while `server` is stopped (SIGSTOP) and every cache is
 * dropped: only what the kernel reads itself (FUSE passthrough) gets through. Its output, or why not.
 */
export async function readWhileStopped(t: ExecutionContext, server: ChildProcess, reader: HeldReader): Promise<string> {
  await reader.opened;
  server.kill('SIGSTOP');
  t.teardown(() => void server.kill('SIGCONT'));
  await writeFile('/proc/sys/vm/drop_caches', '3');
  const timeout = new Promise<string>((done) => setTimeout(done, 15_000, 'timed out: reads waited for the stopped server'));
  const got = await Promise.race([reader.go(), timeout]);
  server.kill('SIGCONT');
  return got;
}
