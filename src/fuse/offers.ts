// Opens a request worker answers itself (docs/fuse-protocol.md §6, "Opens answered by a worker").
// The main thread offers a file it expects to be opened soon (the next ones in its folder's
// listing) with a copy of its layout, or a folder whose listing it read ahead with that listing;
// a worker that reads an OPEN (OPENDIR) of it claims the offer and answers, or the main thread
// withdraws it first. One shared word decides which: whoever moves it
// from OFFERED first.

/** A slot's word is its generation (which offer it holds) times 4, plus one of these states. */
const OFFERED = 0;
const CLAIMED = 1;
const WITHDRAWN = 2;
const FREE = 3;
const STATES = 4;
/** Generations wrap here, so that a word stays a positive Int32. */
const GENERATIONS = 2 ** 29;
/**
 * Handles a worker opens are numbered from here (and the main thread's stay below), so the two
 * never meet: fuse_open_out.fh is a u64, and these stay safe integers for 2^31 opens and more.
 */
export const WORKER_FH_BASE = 2 ** 48;
/** Offers at once, at most: a word each in one shared array. */
const OFFER_SLOTS = 1024;

/**
 * Files up to this size are read whole when opened and put into the kernel's page cache with the
 * open's answer (a store notification): a small file is then read in one round trip, not two
 * (docs/browsing.md §3). The main thread's opens and the workers' follow the same rule.
 */
export const STORE_MAX = 128 * 1024;

/** One offer: its slot in the shared words and the generation the slot had for it. */
export interface OfferId {
  readonly slot: number;
  readonly gen: number;
}

/** The words of every offer's slot, one shared array made once (not a shared buffer per offer, which a walk's memory grew by). */
export function newClaimWords(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(OFFER_SLOTS * Int32Array.BYTES_PER_ELEMENT)).fill(FREE);
}

const word = (id: OfferId, state: number): number => id.gen * STATES + state;

/** A worker takes offer `id`: true when it was still offered (not withdrawn, its slot not given to another offer). */
export function claim(words: Int32Array, id: OfferId): boolean {
  return Atomics.compareExchange(words, id.slot, word(id, OFFERED), word(id, CLAIMED)) === word(id, OFFERED);
}

/** The main thread's side: which slots are free, and taking offers back. */
export class ClaimSlots {
  private readonly free: number[] = Array.from({ length: OFFER_SLOTS }, (_, i) => OFFER_SLOTS - 1 - i);

  constructor(readonly words: Int32Array) {}

  /** A free slot, set offered under its next generation; undefined when every slot is in use. */
  take(): OfferId | undefined {
    const slot = this.free.pop();
    if (slot === undefined) return undefined;
    const id = { slot, gen: (Math.floor(Atomics.load(this.words, slot) / STATES) + 1) % GENERATIONS };
    Atomics.store(this.words, slot, word(id, OFFERED));
    return id;
  }

  /** Takes the offer back and frees its slot: false when a worker claimed it first (the slot is freed once that is heard). */
  withdraw(id: OfferId): boolean {
    if (Atomics.compareExchange(this.words, id.slot, word(id, OFFERED), word(id, WITHDRAWN)) !== word(id, OFFERED)) return false;
    this.free.push(id.slot);
    return true;
  }

  /** Frees the slot of an offer a worker claimed, once its open is heard. */
  heard(id: OfferId): void {
    this.free.push(id.slot);
  }
}

/** Opens the ring holds at most; when it is full the worker leaves the OPEN to the main thread. */
const RING_SLOTS = 4096;
/** Int32 words: how many entries were written, how many read (both only grow, modulo 2^31). */
const WRITTEN = 0;
const READ = 1;

/** What a worker opened: an offered file (OPEN) or an offered folder (OPENDIR). */
export type Opened = 'file' | 'dir';
const OPENED_KINDS: readonly Opened[] = ['file', 'dir'];
/** Numbers per slot: inode, handle, kind (an index into OPENED_KINDS). */
const SLOT_NUMBERS = 3;

/** The ring's memory, for WorkerData. */
export interface RingMemory {
  readonly counts: Int32Array;
  readonly slots: Float64Array;
}

export function newRing(): RingMemory {
  return { counts: new Int32Array(new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT)), slots: new Float64Array(new SharedArrayBuffer(SLOT_NUMBERS * RING_SLOTS * Float64Array.BYTES_PER_ELEMENT)) };
}

/**
 * The opens the first worker answered, told to the main thread through shared memory rather than
 * a message (a message each cost the worker about as much as the open): written before the OPEN's
 * answer, so a request that names the handle, handed over later, finds it when the main thread
 * reads the ring before taking each hand-over. One writer (the first worker), one reader.
 */
export class OpenedRing {
  constructor(private readonly m: RingMemory) {}

  /** Writer: whether push() will take one more (only the writer adds, so the answer holds until it does). */
  hasRoom(): boolean {
    return ((Atomics.load(this.m.counts, WRITTEN) - Atomics.load(this.m.counts, READ)) | 0) < RING_SLOTS;
  }

  /** Writer: false when full. */
  push(ino: number, fh: number, kind: Opened): boolean {
    if (!this.hasRoom()) return false;
    const written = Atomics.load(this.m.counts, WRITTEN);
    const at = SLOT_NUMBERS * ((written >>> 0) % RING_SLOTS);
    this.m.slots[at] = ino;
    this.m.slots[at + 1] = fh;
    this.m.slots[at + 2] = OPENED_KINDS.indexOf(kind);
    // The store of the count comes after the slot's (Atomics are sequentially consistent).
    Atomics.store(this.m.counts, WRITTEN, (written + 1) | 0);
    return true;
  }

  /** Reader: calls `f` with each entry written since the last drain, in order. */
  drain(f: (ino: number, fh: number, kind: Opened) => void): void {
    const written = Atomics.load(this.m.counts, WRITTEN);
    for (let read = Atomics.load(this.m.counts, READ); read !== written; read = (read + 1) | 0) {
      const at = SLOT_NUMBERS * ((read >>> 0) % RING_SLOTS);
      const ino = this.m.slots[at]!;
      const fh = this.m.slots[at + 1]!;
      const kind = OPENED_KINDS[this.m.slots[at + 2]!]!;
      Atomics.store(this.m.counts, READ, (read + 1) | 0);
      f(ino, fh, kind);
    }
  }
}
