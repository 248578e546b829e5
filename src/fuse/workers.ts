// The request workers of a session (request-worker.ts): started, restarted after a failure, and
// told which open handles' layouts they may serve reads of and which files they may open (offers.ts).
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import type { SharedLayout } from '../io/shared-layout.js';
import type { ReplyWriter } from './reply-writer.js';
import type { EndMessage, HandleMessage, RequestMessage, WorkerData } from './request-worker.js';
import type { SharedListing } from './shared-listing.js';
import { ClaimSlots, newClaimWords, newRing, type OfferId, OpenedRing, WORKER_FH_BASE } from './offers.js';
import { Control, newControl } from './worker-control.js';

/**
 * A worker's young generation, in MiB: small, so that the shared memory of the layouts it was
 * given and has let go (an offer per file opened ahead, offers.ts) is freed after some hundred
 * of them, not after tens of thousands (the young generation of a worker is collected only when
 * it fills, and a worker allocates little).
 */
const WORKER_YOUNG_MB = 1;
/** Pause before starting a request worker again after it failed, so a persistent failure cannot spin. */
const RESTART_MS = 200;
/** How a request worker ended: these two mean the connection is gone, anything else is a failure. */
const CONNECTION_GONE = new Set(['ENODEV', 'ECONNABORTED']);

/** Where the main thread's share of the workers' traffic goes. */
export interface PoolListener {
  /** A request to answer. */
  receive(frame: Buffer): void;
  /** A worker answered an OPEN of offered file `ino` as handle `fh` (undefined: the worker ended before it said so). */
  adopted(ino: number, fh: number | undefined): void;
  /** A worker answered the RELEASE of handle `fh`, which it had opened. */
  released(fh: number): void;
  /** The first worker answered the RELEASEDIR of folder handle `fh`, whose listing it was given. */
  releasedDir(fh: number): void;
  /** The first worker answered a READDIRPLUS of folder handle `fh` with its entries [from, to) (publishListing). */
  given(fh: number, from: number, to: number): void;
  /** The first worker answered an OPENDIR of offered folder `ino` as handle `fh` (offerListing). */
  adoptedDir(ino: number, fh: number): void;
}

export class WorkerPool {
  /** Resolves when the kernel has ended the connection and every worker has stopped. */
  readonly ended: Promise<void>;
  /** Each request worker's port for open/release messages. */
  private readonly ports = new Set<MessagePort>();
  /** Layouts the workers were given, by handle, so that a restarted worker gets them too. */
  private readonly layouts = new Map<number, SharedLayout>();
  /** Folder handles whose listing the first worker was given (a restarted first worker is not: the main thread answers those). */
  private readonly listings = new Set<number>();
  /** Shared with the request workers (worker-control.ts). */
  private readonly control = newControl();
  private running = 0;
  private done!: () => void;
  /** The number of the next request to answer, and those that came in before it (RequestMessage.seq). */
  private nextSeq = 0;
  private readonly early = new Map<number, RequestMessage>();
  /** Files offered to the first worker, by inode: the slot whose word says who took it. */
  private readonly offered = new Map<number, OfferId>();
  /** Folders offered to the first worker (offerListing), likewise. */
  private readonly dirsOffered = new Map<number, OfferId>();
  private readonly claims = new ClaimSlots(newClaimWords());
  /** The first worker's port: only it reads every request, so only it gets offers. */
  private firstPort: MessagePort | undefined;
  /** The opens the first worker answered (offers.ts). */
  private readonly ringMemory = newRing();
  private readonly opened = new OpenedRing(this.ringMemory);

  /**
   * Starts `count` workers reading `dev`; every request they do not answer goes to `to.receive`,
   * every offered file a worker opened to `to.adopted`, every handle it released to `to.released`.
   */
  constructor(
    private readonly dev: number,
    private readonly maxRead: number,
    count: number,
    private readonly out: ReplyWriter,
    private readonly log: (line: string) => void,
    private readonly to: PoolListener,
  ) {
    this.ended = new Promise<void>((r) => (this.done = r));
    for (let i = 0; i < count; i++) this.start(i === 0 ? 'first' : 'helper');
  }

  /** Answers the requests handed over in their order: one that overtook another waits for it. */
  private inOrder(m: RequestMessage): void {
    if (m.seq !== this.nextSeq) {
      this.early.set(m.seq, m);
      return;
    }
    for (let next: RequestMessage | undefined = m; next; next = this.early.get(this.nextSeq)) {
      this.early.delete(this.nextSeq);
      this.take(next);
      // Int32 arithmetic, as Atomics.add counts: the numbers wrap after 2^31 requests.
      this.nextSeq = (this.nextSeq + 1) | 0;
    }
  }

  /** A hand-over, after the opens the first worker answered before it (which it may name). */
  private take(m: RequestMessage): void {
    this.heard();
    if ('frame' in m) return this.to.receive(Buffer.from(m.frame.buffer, m.frame.byteOffset, m.frame.byteLength));
    if ('given' in m) return this.to.given(...m.given);
    for (const fh of m.released) this.to.released(fh);
    for (const fh of m.dirs) {
      this.listings.delete(fh);
      this.to.releasedDir(fh);
    }
  }

  /** Takes in the opens the first worker answered since the last call. */
  heard(): void {
    this.opened.drain((ino, fh, kind) => {
      const offers = kind === 'dir' ? this.dirsOffered : this.offered;
      const id = offers.get(ino);
      offers.delete(ino);
      if (id) this.claims.heard(id);
      if (kind === 'file') return this.to.adopted(ino, fh);
      // Its listing is the first worker's now, as one published (publishListing).
      this.listings.add(fh);
      this.to.adoptedDir(ino, fh);
    });
  }

  /** The first worker ended: offers it claimed without saying so are lost; the rest are taken back (the file system's withdraw() then finds them so). */
  private lostOffers(): void {
    this.firstPort = undefined;
    this.heard();
    for (const [ino, id] of this.offered) {
      this.offered.delete(ino);
      if (this.claims.withdraw(id)) continue;
      this.claims.heard(id);
      this.to.adopted(ino, undefined);
    }
    for (const [ino, id] of this.dirsOffered) {
      this.dirsOffered.delete(ino);
      if (!this.claims.withdraw(id)) this.claims.heard(id);
    }
  }

  /** Posts an offer of `ino` to the first worker; false when every slot is in use, there is no first worker, or `ino` is offered already. */
  private offerTo(offers: Map<number, OfferId>, ino: number, message: (id: OfferId) => HandleMessage): boolean {
    const id = !offers.has(ino) && this.firstPort && this.claims.take();
    if (!id) return false;
    offers.set(ino, id);
    this.firstPort!.postMessage(message(id));
    Atomics.add(this.control, Control.HANDLES, 1);
    return true;
  }

  /** Takes back the offer of `ino`: false when a worker opened it already. */
  private withdrawFrom(offers: Map<number, OfferId>, ino: number): boolean {
    const id = offers.get(ino);
    // None: taken back already when the first worker ended (lostOffers).
    if (!id) return true;
    if (!this.claims.withdraw(id)) return false;
    offers.delete(ino);
    this.firstPort?.postMessage({ withdrawn: ino } satisfies HandleMessage);
    Atomics.add(this.control, Control.HANDLES, 1);
    return true;
  }

  /** Lets the first worker open `ino` itself, reading `layout` (offers.ts). */
  offer(ino: number, layout: SharedLayout): boolean {
    return this.offerTo(this.offered, ino, (id) => ({ offer: ino, layout, id }));
  }

  /** Takes back the offer of `ino`: false when a worker opened it already (adopted() is on its way). */
  withdraw(ino: number): boolean {
    return this.withdrawFrom(this.offered, ino);
  }

  /** Lets the first worker answer an OPENDIR of folder `ino`, and then its READDIRPLUS from `listing` (offers.ts). */
  offerListing(ino: number, listing: SharedListing): boolean {
    return this.offerTo(this.dirsOffered, ino, (id) => ({ dirOffer: ino, listing, id }));
  }

  /** Takes back the offer of folder `ino`: false when a worker opened it already (adoptedDir() is on its way). */
  withdrawListing(ino: number): boolean {
    return this.withdrawFrom(this.dirsOffered, ino);
  }

  private start(role: WorkerData['role']): void {
    this.running++;
    const { port1, port2 } = new MessageChannel();
    const data: WorkerData = { dev: this.dev, handles: port2, maxRead: this.maxRead, role, control: this.control, opened: this.ringMemory, claims: this.claims.words };
    const worker = new Worker(new URL('./request-worker.js', import.meta.url), { workerData: data, transferList: [port2], resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_MB } });
    for (const [fh, layout] of this.layouts) port1.postMessage({ open: fh, layout } satisfies HandleMessage);
    port1.on('message', (m: RequestMessage) => this.inOrder(m));
    if (role === 'first') this.firstPort = port1;
    // Only the worker keeps the session going, not its port.
    port1.unref();
    this.ports.add(port1);
    let end = 'exited';
    worker.on('message', (m: EndMessage) => (end = m.ended));
    worker.on('error', (e) => (end = e.message));
    worker.on('exit', () => {
      this.running--;
      this.ports.delete(port1);
      if (this.firstPort === port1) {
        this.lostOffers();
        this.listings.clear();
      }
      port1.close();
      if (CONNECTION_GONE.has(end)) this.out.end();
      if (!this.out.gone) {
        this.log(`/dev/fuse: a request worker stopped (${end}); starting another`);
        setTimeout(() => this.start(role), RESTART_MS);
      } else if (this.running === 0) this.done();
    });
  }

  /** Lets the workers serve reads of handle `fh`; call before the OPEN's reply. */
  publish(fh: number, layout: SharedLayout): void {
    this.layouts.set(fh, layout);
    for (const p of this.ports) p.postMessage({ open: fh, layout } satisfies HandleMessage);
    Atomics.add(this.control, Control.HANDLES, 1);
  }

  /**
   * Lets the first worker answer the READDIRPLUS of folder handle `fh` from `listing` (it tells
   * to.given which entries it gave); call before the OPENDIR's reply.
   */
  publishListing(fh: number, listing: SharedListing): void {
    if (!this.firstPort) return;
    this.listings.add(fh);
    this.firstPort.postMessage({ dir: fh, listing } satisfies HandleMessage);
    Atomics.add(this.control, Control.HANDLES, 1);
  }

  unpublishListing(fh: number): void {
    if (!this.listings.delete(fh) || !this.firstPort) return;
    this.firstPort.postMessage({ release: fh } satisfies HandleMessage);
    Atomics.add(this.control, Control.HANDLES, 1);
  }

  unpublish(fh: number): void {
    // A handle the first worker opened is in its map: a helper handed its RELEASE over.
    if (!this.layouts.delete(fh) && fh < WORKER_FH_BASE) return;
    for (const p of this.ports) p.postMessage({ release: fh } satisfies HandleMessage);
    Atomics.add(this.control, Control.HANDLES, 1);
  }
}
