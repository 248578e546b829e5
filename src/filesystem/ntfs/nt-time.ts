// NT times: 100-nanosecond intervals since 1601-01-01 UTC (docs/filesystems-ntfs.md §7).

/** 1601-01-01 to 1970-01-01 in 100 ns intervals. */
const UNIX_EPOCH_AS_NT = 116444736000000000n;

/** The NT time at `at` of `b` as milliseconds since the Unix epoch (with the sub-millisecond part). */
export function ntTimeToMs(b: Buffer, at: number): number {
  const t = b.readBigUInt64LE(at) - UNIX_EPOCH_AS_NT;
  return Number(t / 10000n) + Number(t % 10000n) / 10000;
}
