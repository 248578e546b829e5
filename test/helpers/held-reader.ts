// A reader in a child process that opens a file of the mount first and reads it only when told
// to: the tests stop the server in between and see whether the kernel reads the file itself.
import type { ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';

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
