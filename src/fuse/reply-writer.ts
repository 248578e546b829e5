// Writing to /dev/fuse from the main thread: replies, and notifications (docs/fuse-protocol.md §3).
import { write, writeSync, writevSync } from 'node:fs';
import { type Request, statusReply } from './protocol.js';

/** Writes replies and notifications until the kernel ends the connection. */
export class ReplyWriter {
  /** Set when the kernel has ended the connection: nothing more is written to it. */
  private ended = false;

  constructor(private readonly dev: number, private readonly log: (line: string) => void) {}

  get gone(): boolean {
    return this.ended;
  }

  /** The connection ended (a request worker saw ENODEV or ECONNABORTED). */
  end(): void {
    this.ended = true;
  }

  /** Writes one reply; a reply in several buffers goes out in one writev (the kernel takes a reply in one write). */
  send(out: Buffer | Buffer[]): void {
    if (this.ended) return;
    try {
      if (Array.isArray(out)) writevSync(this.dev, out);
      else writeSync(this.dev, out);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // ENOENT: the request was interrupted and is gone; ENODEV: unmounted meanwhile.
      if (code === 'ENODEV') this.ended = true;
      else if (code !== 'ENOENT') this.log(`/dev/fuse: reply failed (${code ?? (e as Error).message})`);
    }
  }

  /** A reply without a body: success (0) or an errno. */
  status(req: Request, errno: number): void {
    this.send(statusReply(req, errno));
  }

  /** Writes a notification, off the main thread: the kernel may wait for page locks that a reply from here would release. */
  notify(out: Buffer): void {
    if (this.ended) return;
    write(this.dev, out, (e) => {
      // ENOENT: the kernel had nothing cached for it; ENODEV: unmounted meanwhile.
      if (e && e.code !== 'ENOENT' && e.code !== 'ENODEV') this.log(`/dev/fuse: notification failed (${e.code ?? e.message})`);
    });
  }
}
