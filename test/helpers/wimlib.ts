// wimlib's compressors (Debian's libwim15) through koffi: the independent oracle for the XPRESS
// Huffman and LZX decoders, and the maker of WofCompressedData streams as Windows writes them
// (docs/filesystems-wof.md §2).
import koffi from 'koffi';
import { existsSync } from 'node:fs';

const LIBWIM = '/usr/lib/x86_64-linux-gnu/libwim.so.15';
if (!existsSync(LIBWIM)) throw new Error(`the tests need ${LIBWIM}: run 'bash scripts/setup-system.sh' (package libwim15)`);
const lib = koffi.load(LIBWIM);
const Compressor = koffi.opaque('wimlib_compressor');
const createCompressor = lib.func('wimlib_create_compressor', 'int', ['int', 'size_t', 'unsigned int', koffi.out(koffi.pointer(koffi.pointer(Compressor)))]) as (
  ctype: number,
  maxBlock: number,
  level: number,
  out: unknown[],
) => number;
const compressRaw = lib.func('wimlib_compress', 'size_t', ['const void *', 'size_t', 'void *', 'size_t', koffi.pointer(Compressor)]) as (
  input: Buffer,
  inSize: number,
  output: Buffer,
  outAvail: number,
  c: unknown,
) => number;
const freeCompressor = lib.func('wimlib_free_compressor', 'void', [koffi.pointer(Compressor)]) as (c: unknown) => void;

/** enum wimlib_compression_type (wimlib.h). */
export const WIMLIB_COMPRESSION_TYPE_XPRESS = 1;
export const WIMLIB_COMPRESSION_TYPE_LZX = 2;

export type WimlibType = typeof WIMLIB_COMPRESSION_TYPE_XPRESS | typeof WIMLIB_COMPRESSION_TYPE_LZX;

/**
 * wimlib's compression of `data` (at most `maxBlock` bytes) into fewer bytes than it has, or
 * undefined when it does not get smaller (WOF then stores the chunk raw). Level 0 is wimlib's default.
 */
export function wimlibCompress(type: WimlibType, maxBlock: number, data: Buffer, level = 0): Buffer | undefined {
  const out: unknown[] = [null];
  const rc = createCompressor(type, maxBlock, level, out);
  if (rc !== 0) throw new Error(`wimlib_create_compressor(${type}, ${maxBlock}, ${level}) failed: ${rc}`);
  try {
    if (data.length < 2) return undefined;
    const dest = Buffer.alloc(data.length - 1);
    const n = compressRaw(data, data.length, dest, dest.length, out[0]);
    return n === 0 ? undefined : dest.subarray(0, n);
  } finally {
    freeCompressor(out[0]);
  }
}

/** FILE_PROVIDER_EXTERNAL_INFO_V1.Algorithm values and their chunk sizes (docs/filesystems-wof.md §2). */
export const WOF_CHUNKS = [
  { algorithm: 0, type: WIMLIB_COMPRESSION_TYPE_XPRESS, chunkSize: 4096 },
  { algorithm: 1, type: WIMLIB_COMPRESSION_TYPE_LZX, chunkSize: 32768 },
  { algorithm: 2, type: WIMLIB_COMPRESSION_TYPE_XPRESS, chunkSize: 8192 },
  { algorithm: 3, type: WIMLIB_COMPRESSION_TYPE_XPRESS, chunkSize: 16384 },
] as const;

/**
 * The WofCompressedData stream of `data` as Windows writes it: the chunk offset table (one entry
 * per chunk but the first, 8 bytes each when `data` is over 4 GiB, else 4) and then the chunks,
 * each compressed by wimlib or, when that does not make it smaller, stored raw.
 */
export function wofCompressedData(data: Buffer, algorithm: number, level = 0): Buffer {
  const spec = WOF_CHUNKS[algorithm];
  if (!spec) throw new Error(`no WOF algorithm ${algorithm}`);
  const chunks: Buffer[] = [];
  for (let at = 0; at < data.length; at += spec.chunkSize) {
    const chunk = data.subarray(at, at + spec.chunkSize);
    chunks.push(wimlibCompress(spec.type, spec.chunkSize, chunk, level) ?? chunk);
  }
  const entrySize = data.length > 2 ** 32 ? 8 : 4;
  const table = Buffer.alloc(Math.max(0, chunks.length - 1) * entrySize);
  let offset = 0;
  for (let i = 1; i < chunks.length; i++) {
    offset += chunks[i - 1]!.length;
    if (entrySize === 8) table.writeBigUInt64LE(BigInt(offset), (i - 1) * 8);
    else table.writeUInt32LE(offset, (i - 1) * 4);
  }
  return Buffer.concat([table, ...chunks]);
}

/** A whole `$REPARSE_POINT` value of WOF's FILE provider with `algorithm` (docs/filesystems-wof.md §1). */
export function wofReparsePoint(algorithm: number): Buffer {
  const b = Buffer.alloc(8 + 16);
  b.writeUInt32LE(0x80000017, 0); // IO_REPARSE_TAG_WOF
  b.writeUInt16LE(16, 4); // ReparseDataLength
  b.writeUInt32LE(1, 8); // WOF_EXTERNAL_INFO.Version
  b.writeUInt32LE(2, 12); // WOF_EXTERNAL_INFO.Provider: WOF_PROVIDER_FILE
  b.writeUInt32LE(1, 16); // FILE_PROVIDER_EXTERNAL_INFO_V1.Version
  b.writeUInt32LE(algorithm, 20); // FILE_PROVIDER_EXTERNAL_INFO_V1.Algorithm
  return b;
}
