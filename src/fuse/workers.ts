// The request workers of a session (request-worker.ts): started, restarted after a failure, and
// told which open handles' layouts they may serve reads of.
import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import type { SharedLayout } from '../io/shared-layout.js';
import type { ReplyWriter } from './reply-writer.js';
import type { EndMessage, HandleMessage, RequestMessage, WorkerData } from './request-worker.js';
import { Control, newControl } from './worker-control.js';

/** Pause before starting a request worker again after it failed, so a persistent failure cannot spin. */
const RESTART_MS = 200;
/** How a request worker ended: these two mean the connection is gone, anything else is a failure. */
const CONNECTION_GONE = new Set(['ENODEV', 'ECONNABORTED']);

export class WorkerPool {
  /** Resolves when the kernel has ended the connection and every worker has stopped. */
  readonly ended: Promise<void>;
  /** Each request worker's port for open/release messages. */
  private readonly ports = new Set<MessagePort>();
  /** Layouts the workers were given, by handle, so that a restarted worker gets them too. */
  private readonly layouts = new Map<number, SharedLayout>();
  /** Shared with the request workers (worker-control.ts). */
  private readonly control = newControl();
  private running = 0;
  private done!: () => void;
  /** The number of the next request to answer, and those that came in before it (RequestMessage.seq). */
  private nextSeq = 0;
  private readonly early = new Map<number, Buffer>();

  /** Starts `count` workers reading `dev`; every request they do not answer goes to `receive`. */
  constructor(
    private readonly dev: number,
    private readonly maxRead: number,
    count: number,
    private readonly out: ReplyWriter,
    private readonly log: (line: string) => void,
    private readonly receive: (frame: Buffer) => void,
  ) {
    this.ended = new Promise<void>((r) => (this.done = r));
    for (let i = 0; i < count; i++) this.start(i === 0 ? 'first' : 'helper');
  }

  /** Answers the requests handed over in their order: one that overtook another waits for it. */
  private inOrder({ seq, frame }: RequestMessage): void {
    const buf = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    if (seq !== this.nextSeq) {
      this.early.set(seq, buf);
      return;
    }
    this.receive(buf);
    for (;;) {
      // Int32 arithmetic, as Atomics.add counts: the numbers wrap after 2^31 requests.
      this.nextSeq = (this.nextSeq + 1) | 0;
      const next = this.early.get(this.nextSeq);
      if (!next) return;
      this.early.delete(this.nextSeq);
      this.receive(next);
    }
  }

  private start(role: WorkerData['role']): void {
    this.running++;
    const { port1, port2 } = new MessageChannel();
    const data: WorkerData = { dev: this.dev, handles: port2, maxRead: this.maxRead, role, control: this.control };
    const worker = new Worker(new URL('./request-worker.js', import.meta.url), { workerData: data, transferList: [port2] });
    for (const [fh, layout] of this.layouts) port1.postMessage({ open: fh, layout } satisfies HandleMessage);
    port1.on('message', (m: RequestMessage) => this.inOrder(m));
    // Only the worker keeps the session going, not its port.
    port1.unref();
    this.ports.add(port1);
    let end = 'exited';
    worker.on('message', (m: EndMessage) => (end = m.ended));
    worker.on('error', (e) => (end = e.message));
    worker.on('exit', () => {
      this.running--;
      this.ports.delete(port1);
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

  unpublish(fh: number): void {
    if (!this.layouts.delete(fh)) return;
    for (const p of this.ports) p.postMessage({ release: fh } satisfies HandleMessage);
    Atomics.add(this.control, Control.HANDLES, 1);
  }
}
