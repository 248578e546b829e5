// What a number counts: plain numbers, named so that a signature says which unit it takes.

/** A byte count or byte offset. Plain numbers are exact up to 8 PiB, far beyond any disk here. */
export type Bytes = number;

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** A size for people: '512 B', '1.5 GiB'. */
export function formatBytes(n: Bytes): string {
  let unit = 0;
  while (n >= 1024 && unit < UNITS.length - 1) {
    n /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${n.toFixed(1)} ${UNITS[unit]}`;
}
