// 64-bit little-endian fields read as numbers, from two 32-bit halves: a BigInt per field was the
// largest part of the NTFS reader's work per file (docs/performance.md §9).

const HIGH = 2 ** 32;

/**
 * The unsigned 64-bit field at `at`, or undefined when it is not a safe integer. Exact: the high
 * half times 2^32 is exact, and when it is 2^21 or more the sum is at least 2^53.
 */
export function readSafeU64(b: Buffer, at: number): number | undefined {
  const v = b.readUInt32LE(at + 4) * HIGH + b.readUInt32LE(at);
  return Number.isSafeInteger(v) ? v : undefined;
}

/** The signed 64-bit field at `at`, or undefined when it is not a safe integer (exact, as above). */
export function readSafeI64(b: Buffer, at: number): number | undefined {
  const v = b.readInt32LE(at + 4) * HIGH + b.readUInt32LE(at);
  return Number.isSafeInteger(v) ? v : undefined;
}

/** The field's bytes in hex, most significant first, for an error message about it. */
export function hex64(b: Buffer, at: number): string {
  return `0x${Buffer.from(b.subarray(at, at + 8)).reverse().toString('hex')}`;
}
