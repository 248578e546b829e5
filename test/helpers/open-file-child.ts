// A file held open by a child process, driven one command at a time, so a test can interleave
// writers and readers of a mounted disk (the test process never opens the mount itself).
//   node open-file-child.js PATH FLAGS   (FLAGS: a number, e.g. fs.constants.O_RDWR)
// Each stdin line is a JSON command, each stdout line its JSON answer ({ error: 'ENOSPC' } on failure).
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { lseek } from '../../src/sys/libc.js';

export type Command =
  | { op: 'write'; pos: number; base64: string }
  | { op: 'read'; pos: number; length: number }
  | { op: 'truncate'; size: number }
  | { op: 'seekEnd' }
  | { op: 'fstat' }
  | { op: 'close' };

const SEEK_END = 2;

function answer(fd: number, c: Command): unknown {
  switch (c.op) {
    case 'write':
      return { n: writeSync(fd, Buffer.from(c.base64, 'base64'), 0, undefined, c.pos) };
    case 'read': {
      const buf = Buffer.alloc(c.length);
      let n = 0;
      for (let got = -1; got !== 0 && n < c.length; n += got) got = readSync(fd, buf, n, c.length - n, c.pos + n);
      return { base64: buf.subarray(0, n).toString('base64') };
    }
    case 'truncate':
      return ftruncateSync(fd, c.size), {};
    case 'seekEnd':
      return { size: lseek(fd, 0, SEEK_END) };
    case 'fstat':
      return { size: fstatSync(fd).size };
    case 'close':
      return closeSync(fd), {};
  }
}

/** The test's side: a child holding `path` open with `flags`. */
export class OpenFileChild {
  private readonly child: ChildProcess;
  private readonly answers: ((line: string) => void)[] = [];
  readonly opened: Promise<void>;

  /** `user`: hold it as that user (runuser), else as root. */
  constructor(path: string, flags: number, user?: string) {
    const argv = [process.execPath, new URL(import.meta.url).pathname, path, String(flags)];
    const [cmd, ...args] = user ? ['runuser', '-u', user, '--', ...argv] : argv;
    this.child = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: this.child.stdout! }).on('line', (line) => this.answers.shift()?.(line));
    this.opened = this.next().then((a) => {
      if (a['error']) throw new Error(`open ${path}: ${String(a['error'])}`);
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  private next(): Promise<Record<string, unknown>> {
    return new Promise((done) => this.answers.push((line) => done(JSON.parse(line) as Record<string, unknown>)));
  }

  /** Sends one command; resolves its answer, rejects with the errno name it failed with. */
  async send(c: Command): Promise<Record<string, unknown>> {
    const a = this.next();
    this.child.stdin!.write(`${JSON.stringify(c)}\n`);
    const got = await a;
    if (got['error']) throw Object.assign(new Error(`${c.op}: ${String(got['error'])}`), { code: got['error'] });
    return got;
  }

  async write(pos: number, data: Buffer): Promise<number> {
    return (await this.send({ op: 'write', pos, base64: data.toString('base64') }))['n'] as number;
  }

  async read(pos: number, length: number): Promise<Buffer> {
    return Buffer.from((await this.send({ op: 'read', pos, length }))['base64'] as string, 'base64');
  }

  async seekEnd(): Promise<number> {
    return (await this.send({ op: 'seekEnd' }))['size'] as number;
  }

  async close(): Promise<void> {
    await this.send({ op: 'close' });
    this.kill();
  }

  kill(): void {
    this.child.kill('SIGKILL');
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const say = (a: unknown): boolean => process.stdout.write(`${JSON.stringify(a)}\n`);
  const fail = (e: unknown): boolean => say({ error: (e as NodeJS.ErrnoException).code ?? String(e) });
  let fd = -1;
  try {
    fd = openSync(process.argv[2]!, Number(process.argv[3]));
    say({});
  } catch (e) {
    fail(e);
    process.exit(0);
  }
  createInterface({ input: process.stdin }).on('line', (line) => {
    try {
      say(answer(fd, JSON.parse(line) as Command));
    } catch (e) {
      fail(e);
    }
  });
}
