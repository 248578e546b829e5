// A FUSE session spoken directly over an open, mounted /dev/fuse (mount.ts mounts it): worker
// threads that read requests and answer cached reads themselves, the main thread for everything
// else through the opcode table (handlers.ts), and kernel passthrough (Linux 6.9) for files that
// are one whole backing file. No libfuse and no helper process: requests may be 1 MiB
// (FUSE_MAX_PAGES), and a passthrough file's reads never reach userspace.
// docs/fuse-protocol.md describes the subset of the protocol spoken here.
import { closeSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { AttrsGiven } from './attrs-given.js';
import { Directories } from './directories.js';
import { FuseError, type FuseFs, type OpenOffers } from './fuse-fs.js';
import { givenByWorker, handlerOf, offerListing, releaseHandle, withdrawListing, type OpContext } from './handlers.js';
import { newNotifier, type Notifier } from './notifier.js';
import { PassthroughIds } from './passthrough.js';
import { answerTo, decodeRequest, NO_REPLY_OPS, type Request } from './protocol.js';
import { ReadBuffers } from './read-buffers.js';
import { ReplyWriter } from './reply-writer.js';
import type { SessionOptions } from './session-options.js';
import { WorkerPool } from './workers.js';

const E = osConstants.errno;

export interface Session {
  /** Resolves when the kernel's INIT is answered: a request worker is up and reading. */
  readonly initialized: Promise<void>;
  /** Resolves when the kernel has ended the connection: unmounted, or aborted through fusectl. */
  readonly ended: Promise<void>;
  /** Tells the kernel what of its caches the served tree made stale. */
  readonly notifier: Notifier;
  /** Files the request workers may open themselves (FuseFs.adopt). */
  readonly offers: OpenOffers;
  /** Closes /dev/fuse once the connection has ended. */
  close(): void;
}

/** The main thread's side of a session: answers each request the workers hand it through the opcode table. */
class Connection implements OpContext {
  readonly out: ReplyWriter;
  readonly given: AttrsGiven;
  readonly dirs = new Directories();
  readonly passthrough: PassthroughIds;
  readonly workers: WorkerPool;
  readonly buffers: ReadBuffers;
  readonly initialized: () => void;
  readonly init: Promise<void>;

  constructor(dev: number, readonly fs: FuseFs, readonly o: SessionOptions) {
    let done!: () => void;
    this.init = new Promise<void>((r) => (done = r));
    this.initialized = done;
    this.out = new ReplyWriter(dev, o.log);
    this.given = new AttrsGiven(o.attrSeconds);
    this.passthrough = new PassthroughIds(dev, o.log);
    this.buffers = new ReadBuffers(o.maxRead);
    this.workers = new WorkerPool(dev, o.maxRead, o.workers, this.out, o.log, {
      receive: (frame) => this.receive(frame),
      adopted: (ino, fh) => this.adopt(ino, fh),
      released: (fh) => releaseHandle(this, fh, true),
      releasedDir: (fh) => this.dirs.released(fh),
      given: (fh, from, to) => givenByWorker(this, fh, from, to),
      adoptedDir: (ino, fh) => this.adoptDir(ino, fh),
    });
  }

  /** A worker answered an OPENDIR of an offered folder: the snapshot is open under its handle. */
  private adoptDir(ino: number, fh: number): void {
    const dir = this.dirs.adopted(ino, fh);
    if (!dir) return;
    try {
      this.fs.adoptDir?.(ino, dir.list);
    } catch (e) {
      this.o.log(`/dev/fuse: the OPENDIR of inode ${ino} a request worker answered was not followed up: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** A worker answered an OPEN of an offered file: the handle is the filesystem's now (its answer is sent). */
  private adopt(ino: number, fh: number | undefined): void {
    try {
      this.fs.adopt?.(ino, fh);
    } catch (e) {
      this.o.log(`/dev/fuse: the open of inode ${ino} a request worker answered (handle ${fh}) was not kept: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Answers one request, exactly once (none for FORGET, BATCH_FORGET and INTERRUPT). */
  private receive(frame: Buffer): void {
    let req: Request;
    try {
      req = decodeRequest(frame, frame.length);
    } catch (e) {
      this.o.log(`/dev/fuse: bad request: ${(e as Error).message}`);
      const id = answerTo(frame, frame.length);
      if (id && !NO_REPLY_OPS.has(id.opcode)) this.out.status(id, E.EIO);
      return;
    }
    try {
      handlerOf(req).handle(this, req);
    } catch (e) {
      this.fail(req, e);
    }
  }

  /** The one answer to a request whose handler failed: its FuseError's errno, else EIO with a log line. */
  private fail(req: Request, e: unknown): void {
    if (!(e instanceof FuseError)) this.o.log(`/dev/fuse: request ${req.opcode} failed: ${e instanceof Error ? e.message : String(e)}`);
    if (!NO_REPLY_OPS.has(req.opcode)) this.out.status(req, e instanceof FuseError ? e.errno : E.EIO);
  }

  later<T>(req: Request, work: () => Promise<T>, reply: (value: T) => void): void {
    work().then(
      (v) => {
        try {
          reply(v);
        } catch (e) {
          this.fail(req, e);
        }
      },
      (e: unknown) => this.fail(req, e),
    );
  }
}

/**
 * Serves `fs` over `dev`, a /dev/fuse descriptor already mounted (mount.ts), until the kernel
 * ends the connection. Passthrough needs CAP_SYS_ADMIN.
 */
export function startSession(dev: number, fs: FuseFs, o: SessionOptions): Session {
  const c = new Connection(dev, fs, o);
  return {
    initialized: c.init,
    ended: c.workers.ended,
    notifier: newNotifier(c.out, c.given),
    offers: {
      offer: (ino, layout) => c.workers.offer(ino, layout),
      withdraw: (ino) => c.workers.withdraw(ino),
      heard: () => c.workers.heard(),
      offerListing: (ino, list) => offerListing(c, ino, list),
      withdrawListing: (ino) => withdrawListing(c, ino),
    },
    close: () => void c.workers.ended.then(() => closeSync(dev)),
  };
}
