// Update sequence fixups of MFT records and index blocks (docs/filesystems-ntfs.md §2): the last
// two bytes of every 512-byte block were moved to the update sequence array and replaced by the
// update sequence number, so a torn write shows.
import { NtfsFormatError } from './format-error.js';

/** §2: the stride of the fixups, whatever the sector size. */
export const FIXUP_BLOCK = 512;
const USA_OFFSET_FIELD = 0x04;
const USA_COUNT_FIELD = 0x06;

/** Whether `b` starts with the ASCII `magic` (compared byte by byte: no string per record). */
function hasMagic(b: Buffer, magic: string): boolean {
  for (let i = 0; i < magic.length; i++) if (b[i] !== magic.charCodeAt(i)) return false;
  return true;
}

/**
 * Checks the 4-byte magic and restores the original bytes of `record` in place (a buffer the
 * caller owns); throws on a wrong magic, a bad array or a block whose last bytes do not match.
 */
export function applyFixups(record: Buffer, magic: string): void {
  if (!(hasMagic(record, magic))) throw new NtfsFormatError(`no ${magic} magic`);
  const blocks = record.length / FIXUP_BLOCK;
  const usaOffset = record.readUInt16LE(USA_OFFSET_FIELD);
  const usaCount = record.readUInt16LE(USA_COUNT_FIELD);
  if (!(usaCount === blocks + 1)) throw new NtfsFormatError(`update sequence array has ${usaCount} entries for ${blocks} blocks`);
  if (!(usaOffset >= 8 && usaOffset % 2 === 0 && usaOffset + 2 * usaCount <= FIXUP_BLOCK - 2)) throw new NtfsFormatError(`update sequence array at ${usaOffset} does not fit the first block`);
  const usn = record.readUInt16LE(usaOffset);
  for (let i = 0; i < blocks; i++) {
    const end = (i + 1) * FIXUP_BLOCK - 2;
    if (!(record.readUInt16LE(end) === usn)) throw new NtfsFormatError(`block ${i} fails its update sequence check`);
    record.writeUInt16LE(record.readUInt16LE(usaOffset + 2 + 2 * i), end);
  }
}
