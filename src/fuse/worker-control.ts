// The words a session's request workers share (src/fuse/request-worker.ts), in their own module:
// the main thread makes them without loading the worker's code.

/** Indices into WorkerData.control (an Int32Array over a SharedArrayBuffer). */
export const Control = {
  /** Bumped by the first worker to wake a helper (Atomics.wait/notify). */
  WAKE: 0,
  /** Set when the first worker stops (the connection ended): the helpers read the device themselves and see the end too. */
  ENDED: 1,
  /** Bumped by the main thread after it posts open/release messages: a worker takes them in only when it moved. */
  HANDLES: 2,
  /** The next request a worker hands to the main thread takes this number (Atomics.add): the main thread answers in that order. */
  HANDED: 3,
  /** The next handle a worker opens is WORKER_FH_BASE plus this (offers.ts). */
  NEXT_FH: 4,
} as const;
/** Int32 words in WorkerData.control. */
export const CONTROL_SIZE = 5;

export function newControl(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(CONTROL_SIZE * 4));
}
