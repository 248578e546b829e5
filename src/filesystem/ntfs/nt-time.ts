// NT times: 100-nanosecond intervals since 1601-01-01 UTC (docs/filesystems-ntfs.md §7).

/** 1601-01-01 to 1970-01-01 in milliseconds (116444736000000000 intervals of 100 ns). */
const UNIX_EPOCH_AS_NT_MS = 11644473600000;
/** 2^32 = 10000 × 429496 + 7296: splits the high half so every step below stays an exact integer. */
const HIGH_PER_10000 = 429496;
const HIGH_REST = 7296;

/**
 * The NT time at `at` of `b` as milliseconds since the Unix epoch (with the sub-millisecond part),
 * in integer steps below 2^53 rather than through a BigInt (docs/performance.md §9).
 */
export function ntTimeToMs(b: Buffer, at: number): number {
  const hi = b.readUInt32LE(at + 4);
  const rest = hi * HIGH_REST + b.readUInt32LE(at);
  const ms = hi * HIGH_PER_10000 + Math.floor(rest / 10000);
  return ms - UNIX_EPOCH_AS_NT_MS + (rest % 10000) / 10000;
}
