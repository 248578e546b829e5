// LZX's x86 CALL translation as WIM and WOF use it: the compressor turned the rel32 target of
// every E8 byte into an absolute one for a fixed "file size"; the decoder turns it back
// (docs/filesystems-wof.md §3.5; wimlib's lzx_common.c).

/** The translation's file size in WIM resources and WOF chunks, always this value. */
export const LZX_WIM_MAGIC_FILESIZE = 12000000;
/** An E8 byte starts a translation only before the last 10 bytes of the chunk. */
const E8_TAIL_BYTES = 10;
/** The E8 byte and its 4-byte target: the scan resumes after them. */
const CALL_BYTES = 5;

/** Undoes the translation in place over the chunk `data`. */
export function undoE8Translation(data: Buffer): void {
  const limit = data.length - E8_TAIL_BYTES;
  for (let i = data.indexOf(0xe8); i >= 0 && i < limit; i = data.indexOf(0xe8, i + CALL_BYTES)) {
    const abs = data.readInt32LE(i + 1);
    if (abs >= 0) {
      if (abs < LZX_WIM_MAGIC_FILESIZE) data.writeInt32LE(abs - i, i + 1);
    } else if (abs >= -i) {
      data.writeInt32LE(abs + LZX_WIM_MAGIC_FILESIZE, i + 1);
    }
  }
}
