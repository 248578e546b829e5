// Brings FUSE requests from /dev/fuse to the Node main thread without holding libuv's thread pool.
//
// A read of /dev/fuse blocks until the kernel has a request, and Node can only wait on such a
// file from a pool thread; a few such waits would take the pool that backing-file reads need
// (and a process cannot exit while one waits). Instead `cat` reads the device (it inherits the
// same open file, so replies written to our descriptor reach the same queue) and writes each
// request into a pipe, which the main thread watches with epoll like any socket. Each read of
// /dev/fuse returns exactly one request, and each starts with its own length (fuse_in_header.len),
// so the pipe's byte stream splits back into requests. cat dies with this process
// (setpriv --pdeathsig, util-linux), so a server killed with -9 leaves no reader behind and its
// mount fails at once with ENOTCONN, as a dead libfuse server's does.
import { spawn } from 'node:child_process';

/** What cat prints when the connection is gone: ENODEV (unmounted) or ECONNABORTED (aborted). */
const CONNECTION_GONE = /No such device|connection abort/i;
/** Pause before starting cat again after any other failure, so a persistent one cannot spin. */
const RESTART_MS = 200;

export interface RequestPump {
  /** Resolves when the kernel has ended the connection. */
  readonly ended: Promise<void>;
}

/** Calls `onRequest` with each request read from `dev`, one whole request per call. */
export function pumpRequests(dev: number, onRequest: (frame: Buffer) => void, log: (line: string) => void): RequestPump {
  let done!: () => void;
  const ended = new Promise<void>((r) => (done = r));
  const start = (): void => {
    const cat = spawn('setpriv', ['--pdeathsig', 'KILL', '--', 'cat'], { stdio: [dev, 'pipe', 'pipe'] });
    let failed = false;
    let pending: Buffer | undefined;
    let stderr = '';
    cat.stdout!.on('data', (chunk: Buffer) => {
      let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
      while (buf.length >= 4) {
        const len = buf.readUInt32LE(0);
        if (buf.length < len) break;
        onRequest(buf.subarray(0, len));
        buf = buf.subarray(len);
      }
      pending = buf.length > 0 ? Buffer.from(buf) : undefined;
    });
    cat.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    cat.on('error', (e) => {
      failed = true;
      log(`/dev/fuse: cannot start setpriv and cat to read requests (util-linux, coreutils): ${e.message}`);
    });
    cat.on('close', () => {
      if (failed || CONNECTION_GONE.test(stderr)) return done();
      log(`/dev/fuse: the request reader stopped (${stderr.trim() || 'no message'}); starting it again`);
      setTimeout(start, RESTART_MS);
    });
  };
  start();
  return { ended };
}
