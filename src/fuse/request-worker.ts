// A worker thread that reads requests from /dev/fuse itself (read(2) blocks this thread only).
// READs of an open file whose bytes are in memory or in the page cache are answered right here,
// with one writev, and so are OPENs of files and OPENDIRs of folders the main thread offered
// (offers.ts), their RELEASEs, and the READDIRPLUS and RELEASEDIR of folders whose listing it
// was given; every other
// request, and every READ that would wait for the storage, goes to the main thread, which owns
// the namespace and the asynchronous reader. Each read returns one whole request, and any thread
// may answer any request.
//
// One worker, the first, always reads the device; the others sleep on a futex and join only while
// requests queue up. With all of them asleep in read(2) the kernel hands requests out in turn
// (fs/fuse/dev.c wakes the longest waiter), so a lone reader's every request would wake a
// different thread (docs/fuse-protocol.md §6); several jobs need the others.
import { availableParallelism } from 'node:os';
import { type MessagePort, parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { alignedBuffer } from '../sys/aligned-buffer.js';
import { IOVEC_SIZE, iovecAt, lastErrno, poll, readRaw, schedYield, writevRaw } from '../sys/libc.js';
import { readCachedLayout, type SharedLayout } from '../io/shared-layout.js';
import { claim, type OfferId, OpenedRing, type RingMemory, STORE_MAX, WORKER_FH_BASE } from './offers.js';
import { Control } from './worker-control.js';
import type { SharedListing } from './shared-listing.js';
import { FOPEN_CACHE_DIR, FOPEN_KEEP_CACHE, frameNodeid, plusSlice, frameOpcode, IN_HEADER_SIZE, Op, OPEN_IN_SIZE, OPEN_OUT_SIZE, OUT_HEADER_SIZE, READ_IN_SIZE, readInFh, readInOffset, readInSize, REQUEST_BUFFER_SIZE, STORE_HEADER_SIZE, writeOkHeaderFor, writeOpenReplyFor, writeStoreHeader } from './protocol.js';

export interface WorkerData {
  readonly dev: number;
  /** Open and release messages from the main thread, read synchronously before each request. */
  readonly handles: MessagePort;
  readonly maxRead: number;
  /** The first worker reads the device always, a helper only while requests queue up. */
  readonly role: 'first' | 'helper';
  /** Shared by all workers of a session: see Control. */
  readonly control: Int32Array;
  /** Where the first worker tells the main thread of the opens it answered, and the offers' words (offers.ts). */
  readonly opened: RingMemory;
  readonly claims: Int32Array;
}

/**
 * Main thread → worker: a handle the worker may serve reads of, or one that was closed; a file
 * (by inode) the worker may open itself, or its offer taken back (worker → main thread: RequestMessages).
 */
export type HandleMessage =
  | { readonly open: number; readonly layout: SharedLayout }
  | { readonly dir: number; readonly listing: SharedListing }
  | { readonly release: number }
  | { readonly offer: number; readonly layout: SharedLayout; readonly id: OfferId }
  | { readonly dirOffer: number; readonly listing: SharedListing; readonly id: OfferId }
  | { readonly withdrawn: number };

/**
 * Worker → main thread, on the worker's port: a request to answer, as its bytes, and its place
 * among every worker's requests (Control.HANDED), so the main thread answers them in the order
 * they were handed over (a RELEASE before the next OPEN of the file), as one queue would.
 */
export type RequestMessage =
  | { readonly seq: number; readonly frame: Uint8Array }
  | { readonly seq: number; readonly released: readonly number[]; readonly dirs: readonly number[] }
  | { readonly seq: number; readonly given: readonly [fh: number, from: number, to: number] };
/** Worker → main thread, on its own port: how its connection ended. */
export type EndMessage = { readonly ended: string };


const { dev, handles: port, maxRead, role, control, opened, claims } = workerData as WorkerData;
const openedRing = new OpenedRing(opened);
/** Handles this worker opened and then released, and folder handles it released (answered here), to tell the main thread in one message. */
const released = { files: [] as number[], dirs: [] as number[] };
/** Releases told at once, at most. */
const RELEASES_TOLD = 16;
const handles = new Map<number, SharedLayout>();
/** A folder's READDIRPLUS entries, encoded: the bytes, and each entry's end in them. */
interface Listing {
  readonly bytes: Buffer;
  readonly ends: Uint32Array;
}
/** Open folders' encoded entries (the first worker only), by handle. */
const listings = new Map<number, Listing>();
/** Files offered by inode: an OPEN of one is answered here once (offers.ts). */
const offers = new Map<number, { readonly layout: SharedLayout; readonly id: OfferId }>();
/** Folders offered by inode: an OPENDIR of one is answered here once, its READDIRPLUS from the listing. */
const dirOffers = new Map<number, { readonly listing: Listing; readonly id: OfferId }>();
/** Any request (a BATCH_FORGET is cut to fit). */
const request = Buffer.alloc(REQUEST_BUFFER_SIZE);
/** Page-aligned, like the main thread's reply buffers. */
const data = alignedBuffer(maxRead);
const header = Buffer.alloc(OUT_HEADER_SIZE);
/** An OPEN's fuse_open_out, for the opens answered here. */
const openOut = Buffer.alloc(OPEN_OUT_SIZE);
/** A store notification's two struct iovecs: its header, then the file's bytes in `data`. */
const storeHeader = Buffer.alloc(STORE_HEADER_SIZE);
const storeIov = Buffer.alloc(2 * IOVEC_SIZE);
iovecAt(storeIov, 0, storeHeader, 0, STORE_HEADER_SIZE);
/** The reply's two struct iovecs, header and data: only the data's length changes. */
const reply = Buffer.alloc(2 * IOVEC_SIZE);
iovecAt(reply, 0, header, 0, OUT_HEADER_SIZE);
/**
 * The first worker looks for a queue (poll) after every this many requests: a poll after each
 * costs a small read a measurable part of its time (docs/fuse-protocol.md §6); a queue that
 * builds lasts, and helpers, once awake, look for it themselves after each request.
 */
const QUEUE_CHECK_EVERY = 8;
let served = 0;
/** Control.HANDLES when the port was last emptied; -1: the layouts posted at start are still to take in. */
let handlesSeen = -1;
/** struct pollfd for the device, <poll.h>: POLLIN (1). */
const pollFd = Buffer.alloc(8);
pollFd.writeInt32LE(dev, 0);
pollFd.writeInt16LE(1, 4);

/** Whether a request (or the connection's end, POLLERR) is waiting on the device, without waiting. */
function pending(): boolean {
  return poll(pollFd, 1, 0) > 0;
}

/**
 * Takes in every open/release the main thread posted: it posts them, then bumps
 * Control.HANDLES, before it answers the OPEN. Asking the port on every request cost a native
 * call each; the counter is a load.
 */
function catchUp(): void {
  const now = Atomics.load(control, Control.HANDLES);
  if (now === handlesSeen) return;
  handlesSeen = now;
  for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
    const msg = m.message as HandleMessage;
    if ('open' in msg) handles.set(msg.open, msg.layout);
    else if ('dir' in msg) listings.set(msg.dir, listingOf(msg.listing));
    else if ('release' in msg) handles.delete(msg.release) || listings.delete(msg.release);
    else if ('offer' in msg) offers.set(msg.offer, msg);
    else if ('dirOffer' in msg) dirOffers.set(msg.dirOffer, { listing: listingOf(msg.listing), id: msg.id });
    else offers.delete(msg.withdrawn) || dirOffers.delete(msg.withdrawn);
  }
}

const listingOf = (l: SharedListing): Listing => ({ bytes: Buffer.from(l.bytes.buffer, l.bytes.byteOffset, l.bytes.byteLength), ends: l.ends });

/** Answers a READ from the page cache; false when the main thread must answer it (a short body too: it says why). */
function readHere(length: number): boolean {
  if (length < IN_HEADER_SIZE + READ_IN_SIZE || frameOpcode(request) !== Op.READ) return false;
  const layout = handles.get(readInFh(request, IN_HEADER_SIZE));
  const size = readInSize(request, IN_HEADER_SIZE);
  if (!layout || size > maxRead) return false;
  const n = readCachedLayout(layout, readInOffset(request, IN_HEADER_SIZE), data, size);
  if (n < 0) return false;
  writeOkHeaderFor(header, request, n);
  iovecAt(reply, IOVEC_SIZE, data, 0, n);
  // -1 with ENOENT: the request was interrupted and is gone; ENODEV: unmounted. The next read says which.
  writevRaw(dev, reply, 2);
  return true;
}

/**
 * Answers a READDIRPLUS of an open folder whose entries the main thread encoded (every one with
 * its attributes: each counts as a lookup). The main thread is told which entries went before
 * the answer, so that whatever the kernel sends about them later (a FORGET) reaches it after.
 */
function listedHere(length: number): boolean {
  if (role !== 'first' || length < IN_HEADER_SIZE + READ_IN_SIZE || frameOpcode(request) !== Op.READDIRPLUS) return false;
  const fh = readInFh(request, IN_HEADER_SIZE);
  const listing = listings.get(fh);
  if (!listing) return false;
  const from = readInOffset(request, IN_HEADER_SIZE);
  const { start, end, last } = plusSlice(listing.ends, listing.bytes.length, from, readInSize(request, IN_HEADER_SIZE));
  if (last > from) {
    tellReleased();
    port.postMessage({ seq: Atomics.add(control, Control.HANDED, 1), given: [fh, from, last] } satisfies RequestMessage);
  }
  writeOkHeaderFor(header, request, end - start);
  iovecAt(reply, IOVEC_SIZE, listing.bytes, start, end - start);
  writevRaw(dev, reply, 2);
  return true;
}

/** O_ACCMODE and O_RDONLY, <fcntl.h>: only a read-only open of an offered file is answered here. */
const O_ACCMODE = 3;
const O_RDONLY = 0;

/** The offer the OPEN or OPENDIR (`op`) just read names, taken out of `from`; undefined when there is none. */
function offerFor<T>(length: number, op: number, from: Map<number, T>): { readonly ino: number; readonly offer: T } | undefined {
  if (length < IN_HEADER_SIZE + OPEN_IN_SIZE || frameOpcode(request) !== op) return undefined;
  const ino = frameNodeid(request);
  const offer = from.get(ino);
  if (offer === undefined) return undefined;
  from.delete(ino);
  return { ino, offer };
}

/** A handle numbered here: from WORKER_FH_BASE up, shared by all workers (offers.ts). */
const nextFh = (): number => WORKER_FH_BASE + (Atomics.add(control, Control.NEXT_FH, 1) >>> 0);

/** Answers the OPEN or OPENDIR just read with handle `fh`. */
function answerOpen(fh: number, flags: number): void {
  writeOpenReplyFor(header, openOut, request, fh, flags);
  iovecAt(reply, IOVEC_SIZE, openOut, 0, OPEN_OUT_SIZE);
  writevRaw(dev, reply, 2);
}

/**
 * Answers an OPEN of an offered file: claims the offer, numbers the handle, tells the main thread
 * (numbered among the hand-overs before the answer, so that whatever the kernel sends with the
 * handle reaches the main thread after it), then answers. False when the main thread must.
 */
function openHere(length: number): boolean {
  const taken = offerFor(length, Op.OPEN, offers);
  if (!taken) return false;
  const { ino, offer } = taken;
  if ((request.readUInt32LE(IN_HEADER_SIZE) & O_ACCMODE) !== O_RDONLY || !openedRing.hasRoom() || !claim(claims, offer.id)) return false;
  const fh = nextFh();
  handles.set(fh, offer.layout);
  try {
    storeHere(ino, offer.layout);
  } finally {
    // Claimed means told: the main thread holds back other opens of the file until it reads this.
    openedRing.push(ino, fh, 'file');
  }
  answerOpen(fh, FOPEN_KEEP_CACHE);
  return true;
}

/**
 * Answers an OPENDIR of an offered folder, as openHere() an OPEN: claims the offer, numbers the
 * handle, tells the main thread through the ring, answers; its READDIRPLUS then come to
 * listedHere(), its RELEASEDIR to releaseHere().
 */
function openDirHere(length: number): boolean {
  const taken = offerFor(length, Op.OPENDIR, dirOffers);
  if (!taken || !openedRing.hasRoom() || !claim(claims, taken.offer.id)) return false;
  const fh = nextFh();
  listings.set(fh, taken.offer.listing);
  openedRing.push(taken.ino, fh, 'dir');
  answerOpen(fh, FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE);
  return true;
}

/**
 * Answers the RELEASE of a handle this worker opened, or the RELEASEDIR of a folder whose
 * listing it was given (the answer never depends on anything), and keeps the handle to tell the
 * main thread with others: it frees the handle's descriptors, or the folder's snapshot, then.
 */
function releaseHere(length: number): boolean {
  if (role !== 'first' || length < IN_HEADER_SIZE + READ_IN_SIZE) return false;
  const op = frameOpcode(request);
  const fh = readInFh(request, IN_HEADER_SIZE);
  if (op === Op.RELEASE && fh >= WORKER_FH_BASE) {
    handles.delete(fh);
    released.files.push(fh);
  } else if (op === Op.RELEASEDIR && listings.delete(fh)) released.dirs.push(fh);
  else return false;
  writeOkHeaderFor(header, request, 0);
  writevRaw(dev, reply, 1);
  if (released.files.length + released.dirs.length >= RELEASES_TOLD) tellReleased();
  return true;
}

/** Tells the main thread of the releases answered here, numbered among the hand-overs. */
function tellReleased(): void {
  if (released.files.length + released.dirs.length === 0) return;
  const seq = Atomics.add(control, Control.HANDED, 1);
  port.postMessage({ seq, released: released.files.splice(0), dirs: released.dirs.splice(0) } satisfies RequestMessage);
}

/**
 * Puts a small file's bytes into the inode's page cache before its open is answered, as the main
 * thread's opens do (offers.ts STORE_MAX), when its sources' page cache holds them all. No other
 * handle of the file is open (the main thread offers only such files, and holds back its own
 * opens of one a worker claimed until it hears), so no READ holds a page this write must lock.
 */
function storeHere(ino: number, layout: SharedLayout): void {
  const size = layout.size;
  if (size === 0 || size > STORE_MAX || size > data.length || readCachedLayout(layout, 0, data, size) !== size) return;
  writeStoreHeader(storeHeader, ino, size);
  iovecAt(storeIov, IOVEC_SIZE, data, 0, size);
  writevRaw(dev, storeIov, 2);
}

/** A helper sleeps until the first worker sees requests queue up, then reads while they do. */
function awaitQueue(): void {
  for (;;) {
    const seen = Atomics.load(control, Control.WAKE);
    if (Atomics.load(control, Control.ENDED) !== 0 || pending()) return;
    Atomics.wait(control, Control.WAKE, seen);
  }
}

/**
 * How long the first worker looks for the next request (poll) before it blocks in read(2) after
 * an answer: a thread asleep in read(2) is woken through the scheduler, on a VM through the
 * host. After a READ answered here; not after a READ handed to the main thread, which is
 * answered after storage reads, while a spin takes the CPU the main thread and smbd need
 * (docs/fuse-protocol.md §6). An idle server never spins.
 */
const SPIN_MS = 0.05;
/**
 * How long the first worker looks for the next request after handing the main thread one that is
 * not a READ (OPEN, LOOKUP, RELEASE...): the main thread answers those from memory, and a program
 * walking files sends its next one soon after (an open, then a close; docs/fuse-protocol.md §6).
 * Never with one core, where the spin would hold the CPU the main thread needs to answer.
 */
const HANDED_SPIN_MS = availableParallelism() > 1 ? 0.2 : 0;

/** Waits for the next request without sleeping, for at most `ms`. */
function spin(ms: number): void {
  const until = performance.now() + ms;
  while (!pending() && performance.now() < until) schedYield();
}

/**
 * Posts a request the main thread answers: a copy of just the request (posting a view clones its
 * whole buffer), transferred, numbered in the order of every worker's hand-overs.
 */
function handOver(length: number): void {
  tellReleased();
  const frame = new Uint8Array(request.subarray(0, length));
  const seq = Atomics.add(control, Control.HANDED, 1);
  port.postMessage({ seq, frame } satisfies RequestMessage, [frame.buffer as ArrayBuffer]);
}

/** What the last request was: answered here (a READ, an OPEN), handed over (not a READ), or a READ handed over. */
type Last = 'answered' | 'opened' | 'handed' | 'read-handed';

function serve(): string {
  let last: Last = 'read-handed';
  for (;;) {
    if (role === 'helper') awaitQueue();
    else if (last === 'answered') spin(SPIN_MS);
    else if ((last === 'handed' || last === 'opened') && HANDED_SPIN_MS > 0) spin(HANDED_SPIN_MS);
    // Before it may sleep: the main thread frees released handles only once it hears.
    if (released.files.length + released.dirs.length > 0 && !pending()) tellReleased();
    const length = readRaw(dev, request, request.length);
    if (length < 0) {
      const { code } = lastErrno();
      if (code === 'EINTR' || code === 'EAGAIN') continue;
      // ENODEV: unmounted; ECONNABORTED: aborted through fusectl. Anything else ends this worker too.
      return code;
    }
    if (role === 'first' && ++served % QUEUE_CHECK_EVERY === 0 && pending()) {
      // More requests wait behind this one: one helper more.
      Atomics.add(control, Control.WAKE, 1);
      Atomics.notify(control, Control.WAKE, 1);
    }
    catchUp();
    let answered: Last | undefined;
    try {
      answered = readHere(length) ? 'answered' : listedHere(length) || releaseHere(length) ? 'handed' : openHere(length) || openDirHere(length) ? 'opened' : undefined;
    } catch {
      // A failed fast path is not an answer: the main thread reads it again and answers.
    }
    if (answered) last = answered;
    else {
      last = frameOpcode(request) === Op.READ ? 'read-handed' : 'handed';
      handOver(length);
    }
  }
}

const ended = serve();
if (role === 'first') {
  Atomics.store(control, Control.ENDED, 1);
  Atomics.notify(control, Control.WAKE);
}
parentPort!.postMessage({ ended } satisfies EndMessage);
