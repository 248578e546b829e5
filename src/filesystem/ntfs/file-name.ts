// $FILE_NAME: a name of a file in a folder, as an attribute and as an index key
// (docs/filesystems-ntfs.md §8).
import { check, NtfsFormatError } from './format-error.js';
import { readRef, type FileRef } from './mft-record.js';

const NAME_LENGTH_FIELD = 0x40;
const NAMESPACE_FIELD = 0x41;
const NAME_FIELD = 0x42;
/** §8 namespaces: a DOS-only name is the 8.3 alias of a long one and is not listed. */
export const NAMESPACE_DOS = 2;

export interface FileName {
  readonly parent: FileRef;
  readonly name: string;
  readonly namespace: number;
}

export function parseFileName(b: Buffer): FileName {
  if (!(b.length >= NAME_FIELD)) throw new NtfsFormatError(`$FILE_NAME of ${b.length} bytes`);
  const length = b[NAME_LENGTH_FIELD]!;
  if (!(NAME_FIELD + 2 * length <= b.length)) throw new NtfsFormatError(`$FILE_NAME's name of ${length} characters runs past it`);
  check(length > 0, 'empty $FILE_NAME');
  return { parent: readRef(b, 0), name: b.toString('utf16le', NAME_FIELD, NAME_FIELD + 2 * length), namespace: b[NAMESPACE_FIELD]! };
}
