// The reparse point of a WOF-compressed file: IO_REPARSE_TAG_WOF, WOF_EXTERNAL_INFO and
// FILE_PROVIDER_EXTERNAL_INFO_V1 (docs/filesystems-wof.md §1). Anything but the FILE provider's
// version 1 with a known algorithm is data this reader cannot decode.
import { UnsupportedDataError } from '../volume-fs.js';

export const IO_REPARSE_TAG_WOF = 0x80000017;
/** ReparseTag le32, ReparseDataLength le16, Reserved le16. */
const REPARSE_HEADER_BYTES = 8;
const WOF_CURRENT_VERSION = 1;
const WOF_PROVIDER_FILE = 2;
const FILE_PROVIDER_CURRENT_VERSION = 1;
/** WOF_EXTERNAL_INFO (Version, Provider) + FILE_PROVIDER_EXTERNAL_INFO_V1 (Version, Algorithm). */
const WOF_FILE_DATA_BYTES = 16;

/** FILE_PROVIDER_EXTERNAL_INFO_V1.Algorithm: XPRESS4K, LZX, XPRESS8K, XPRESS16K. */
export type WofAlgorithm = 0 | 1 | 2 | 3;
const NUM_ALGORITHMS = 4;

/**
 * The algorithm of a WOF reparse point, given the whole `$REPARSE_POINT` value (header
 * included); UnsupportedDataError, naming `file`, for anything else.
 */
export function parseWofReparse(reparse: Buffer, file: string): WofAlgorithm {
  const fail = (what: string) => new UnsupportedDataError(`${file}: ${what}`);
  if (reparse.length < REPARSE_HEADER_BYTES) throw fail(`a reparse point of ${reparse.length} bytes`);
  const tag = reparse.readUInt32LE(0);
  if (tag !== IO_REPARSE_TAG_WOF) throw fail(`reparse tag 0x${tag.toString(16)} is not WOF`);
  const length = reparse.readUInt16LE(4);
  if (length < WOF_FILE_DATA_BYTES || reparse.length < REPARSE_HEADER_BYTES + WOF_FILE_DATA_BYTES) {
    throw fail(`WOF reparse data of ${Math.min(length, reparse.length - REPARSE_HEADER_BYTES)} bytes, not ${WOF_FILE_DATA_BYTES}`);
  }
  const [wofVersion, provider, fileVersion, algorithm] = [0, 4, 8, 12].map((o) => reparse.readUInt32LE(REPARSE_HEADER_BYTES + o)) as [number, number, number, number];
  if (wofVersion !== WOF_CURRENT_VERSION) throw fail(`WOF version ${wofVersion}`);
  if (provider !== WOF_PROVIDER_FILE) throw fail(`WOF provider ${provider} (only the FILE provider, 2, keeps the data in the file)`);
  if (fileVersion !== FILE_PROVIDER_CURRENT_VERSION) throw fail(`WOF FILE provider version ${fileVersion}`);
  if (algorithm >= NUM_ALGORITHMS) throw fail(`WOF compression algorithm ${algorithm}`);
  return algorithm as WofAlgorithm;
}
