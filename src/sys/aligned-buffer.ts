// Buffers whose memory starts on a page boundary, as O_DIRECT reads require (open(2), "O_DIRECT").
import koffi from 'koffi';

/** The alignment O_DIRECT asks of memory, file offsets and lengths on btrfs and XFS (their block size). */
export const DIRECT_ALIGN = 4096;

/** `size` bytes starting at a multiple of DIRECT_ALIGN in memory (contents undefined). */
export function alignedBuffer(size: number): Buffer {
  const raw = Buffer.allocUnsafeSlow(size + DIRECT_ALIGN);
  const skip = (DIRECT_ALIGN - Number(koffi.address(raw) % BigInt(DIRECT_ALIGN))) % DIRECT_ALIGN;
  return raw.subarray(skip, skip + size);
}

/** Whether `buf` at byte `off` sits on a DIRECT_ALIGN boundary in memory. */
export function isAlignedAt(buf: Buffer, off: number): boolean {
  return (Number(koffi.address(buf) % BigInt(DIRECT_ALIGN)) + off) % DIRECT_ALIGN === 0;
}
