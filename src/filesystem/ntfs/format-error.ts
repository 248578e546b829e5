// A structure of an NTFS volume that breaks the format (docs/filesystems-ntfs.md). Thrown by the
// pure parsers of this folder and caught by type in ntfs-filesystem.ts, which names the volume
// and the record in the CorruptVolumeError it throws instead.
export class NtfsFormatError extends Error {
  override name = 'NtfsFormatError';
}

/** Throws an NtfsFormatError unless `ok`. */
export function check(ok: boolean, what: string): asserts ok {
  if (!ok) throw new NtfsFormatError(what);
}
