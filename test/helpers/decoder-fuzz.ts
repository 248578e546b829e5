// Fuzzes a decompressor with mutated real compressed chunks (byte flips and truncations, fixed
// seed): every case decodes to the right length or throws CorruptDataError, within a time bound.
import fc from 'fast-check';
import { CorruptDataError } from '../../src/filesystem/wof/corrupt-data.js';

export interface Chunk {
  readonly c: Buffer;
  readonly size: number;
}

/** The slowest case's milliseconds; throws (through fast-check) on a wrong length or another error. */
export function fuzzDecoder(chunks: readonly Chunk[], decode: (input: Buffer, size: number) => Buffer, seed: number, numRuns = 3000): number {
  let slowest = 0;
  fc.assert(
    fc.property(
      fc.constantFrom(...chunks),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
      fc.option(fc.nat(), { freq: 4 }),
      ({ c, size }, flips, cut) => {
        const m = Buffer.from(c);
        for (const [at, v] of flips) m[at % m.length] = v;
        const input = cut === null ? m : m.subarray(0, cut % m.length);
        const t0 = performance.now();
        try {
          if (decode(input, size).length !== size) return false;
        } catch (e) {
          if (!(e instanceof CorruptDataError)) throw e;
        }
        slowest = Math.max(slowest, performance.now() - t0);
        return true;
      },
    ),
    { seed, numRuns },
  );
  return slowest;
}
