// Sizes given on the command line: a number of bytes with an optional binary suffix (K, M, G, T).
import type { Bytes } from '../base/units.js';
import { UsageError } from './errors.js';

const SUFFIXES: ReadonlyMap<string, number> = new Map([['', 1], ['K', 2 ** 10], ['M', 2 ** 20], ['G', 2 ** 30], ['T', 2 ** 40]]);

/** '512M' → 536870912; throws a UsageError naming `option` for anything else. */
export function parseByteSize(option: string, text: string): Bytes {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  const bytes = m ? Math.floor(Number(m[1]) * SUFFIXES.get(m[2]!.toUpperCase())!) : NaN;
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new UsageError(`${option}: '${text}' is not a size (bytes, or a number with K, M, G or T: 20G)`);
  return bytes;
}
