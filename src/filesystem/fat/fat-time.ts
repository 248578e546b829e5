// FAT's date and time fields (docs/filesystems-ext4-fat.md §11, after Microsoft's FAT32 File
// System Specification 1.03, §6.1): local time with no zone, taken here as UTC.

/** 1980-01-01T00:00:00Z: FAT's first date, given for a date field that is zero or invalid. */
export const FAT_EPOCH_MS = Date.UTC(1980, 0, 1);

/**
 * Milliseconds since the Unix epoch of a date (bits 15-9 years since 1980, 8-5 month, 4-0 day),
 * a time (15-11 hours, 10-5 minutes, 4-0 two-second units) and hundredths (0-199, creation time
 * only); undefined when a field is out of range.
 */
export function fatTimeMs(date: number, time: number, hundredths = 0): number | undefined {
  const year = 1980 + (date >> 9);
  const month = (date >> 5) & 0xf;
  const day = date & 0x1f;
  const hours = time >> 11;
  const minutes = (time >> 5) & 0x3f;
  const seconds = (time & 0x1f) * 2;
  if (month < 1 || month > 12 || day < 1 || hours > 23 || minutes > 59 || seconds > 58 || hundredths > 199) return undefined;
  const ms = Date.UTC(year, month - 1, day, hours, minutes, seconds) + hundredths * 10;
  return new Date(ms).getUTCDate() === day ? ms : undefined; // 31 February rolls over: invalid
}
