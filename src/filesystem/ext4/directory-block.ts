// Linear directory entries (ext4_dir_entry_2), as every folder block holds them: htree folders
// hide their index inside entries with inode 0 or in ".."'s record, so one linear pass reads
// every name (docs/filesystems-ext4-fat.md §7, after Documentation/filesystems/ext4/directory.rst).

/** inode (4), rec_len (2), name_len (1), file_type (1), then the name. */
const DIRENT_HEADER = 8;
/** With 64 KiB blocks, rec_len 0 or 65535 stands for 65536 (ext4_rec_len_from_disk). */
const MAX_REC_LEN = 65535;
const BIG_BLOCK = 65536;
/** A name no Linux path can hold is left out rather than served. */
const UNSERVABLE_NAME = /[/\0]/;

export interface RawDirEntry {
  readonly name: string;
  readonly ino: number;
}

/**
 * Adds the live entries of one directory block (or of an inline area) to `out`, skipping
 * "." and "..". Returns a message for an entry that does not fit, else undefined.
 */
export function parseDirectoryBlock(block: Buffer, out: RawDirEntry[]): string | undefined {
  let at = 0;
  while (at < block.length) {
    if (at + DIRENT_HEADER > block.length) return `entry header at byte ${at} runs past the block`;
    const ino = block.readUInt32LE(at);
    const diskRecLen = block.readUInt16LE(at + 4);
    const recLen = block.length === BIG_BLOCK && (diskRecLen === 0 || diskRecLen === MAX_REC_LEN) ? BIG_BLOCK : diskRecLen;
    const nameLen = block[at + 6]!;
    if (recLen < DIRENT_HEADER || recLen % 4 !== 0 || at + recLen > block.length) return `entry at byte ${at} has rec_len ${recLen}`;
    if (ino !== 0) {
      if (DIRENT_HEADER + nameLen > recLen || nameLen === 0) return `entry at byte ${at} has name_len ${nameLen} in rec_len ${recLen}`;
      const name = block.toString('utf8', at + DIRENT_HEADER, at + DIRENT_HEADER + nameLen);
      if (name !== '.' && name !== '..' && !UNSERVABLE_NAME.test(name)) out.push({ name, ino });
    }
    at += recLen;
  }
  return undefined;
}
