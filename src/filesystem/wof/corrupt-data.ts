// Compressed data that does not decode: the decoders know no volume or file, so they throw
// this and wof.ts, which catches it by type, names the file in a CorruptVolumeError.

export class CorruptDataError extends Error {
  override name = 'CorruptDataError';
}
