// Property tests for the filesystem readers: a real volume held in memory, with byte edits laid
// over what the reader reads, walked whole. Every case must end in a result or in one of the two
// error classes of src/filesystem/volume-fs.ts, within a time and a read budget.
import fc from 'fast-check';
import type { Layout } from '../../src/disk/layout.js';
import { CorruptVolumeError, type FsNode, UnsupportedDataError, type Volume, type VolumeFileSystem } from '../../src/filesystem/volume-fs.js';

/** A byte edit: `value` at `at`, or a 32-bit little-endian value there. */
export interface ByteEdit {
  readonly at: number;
  readonly value: number;
  readonly width: 1 | 2 | 4;
}

export interface FuzzBudget {
  /** A case that takes longer counts as a hang. */
  readonly ms: number;
  /** A case that makes the reader read more than this many bytes counts as unbounded. */
  readonly readBytes: number;
}

/** A Volume over `image` with `edits` laid over it, counting the bytes read. */
export function editedVolume(name: string, image: Buffer, edits: readonly ByteEdit[], budget: FuzzBudget): Volume {
  let read = 0;
  return {
    name,
    size: image.length,
    source: { path: name },
    sourceOffset: 0,
    read: async (offset, length) => {
      if (offset < 0 || length < 0 || offset + length > image.length) throw new RangeError(`${name}: read of ${length} bytes at ${offset} lies outside the volume`);
      read += length;
      if (read > budget.readBytes) throw new Error(`${name}: the reader read more than ${budget.readBytes} bytes`);
      const out = Buffer.from(image.subarray(offset, offset + length));
      for (const e of edits) {
        for (let i = 0; i < e.width; i++) {
          const p = e.at + i - offset;
          if (p >= 0 && p < length) out[p] = (e.value >>> (8 * i)) & 0xff;
        }
      }
      return out;
    },
  };
}

/** Contiguous, covering [0, size), file segments inside the volume's bytes. */
export function layoutProblem(layout: Layout, volume: Volume): string | undefined {
  let pos = 0;
  for (const s of layout.segments) {
    if (s.start !== pos || !(s.length > 0)) return `segment [${s.start}, +${s.length}) at ${pos}`;
    if (s.kind === 'file' && (s.source.path !== volume.source.path || s.offset < volume.sourceOffset || s.offset + s.length > volume.sourceOffset + volume.size)) return `file segment at ${s.offset}+${s.length} outside the volume`;
    if (s.kind === 'bytes' && s.data.length !== s.length) return `bytes segment of ${s.data.length} bytes claims ${s.length}`;
    pos += s.length;
  }
  return pos === layout.size ? undefined : `segments end at ${pos}, size ${layout.size}`;
}

const allowed = (e: unknown): boolean => e instanceof CorruptVolumeError || e instanceof UnsupportedDataError;

/** Runs `f`; an allowed error counts as done. Returns a problem, or undefined. */
async function attempt(f: () => Promise<string | undefined>): Promise<string | undefined> {
  try {
    return await f();
  } catch (e) {
    return allowed(e) ? undefined : `unexpected ${(e as Error)?.name}: ${(e as Error)?.message}`;
  }
}

/** Visits every node once (a folder cycle ends), looking up, reading links and mapping files. */
async function walk(fs: VolumeFileSystem, volume: Volume): Promise<string | undefined> {
  const seen = new Set<number>();
  const queue: FsNode[] = [await fs.root()];
  for (let n = 0; n < queue.length; n++) {
    const node = queue[n]!;
    const problem = await attempt(async () => {
      if (node.type === 'symlink') await fs.readlink(node);
      if (node.type === 'file') {
        const data = await fs.data(node);
        if (data.kind === 'layout') return layoutProblem(data.layout, volume);
        if (data.size > 0) await data.read(0, Math.min(data.size, 65536));
      }
      if (node.type !== 'dir' || seen.has(node.id)) return undefined;
      seen.add(node.id);
      for (const e of await fs.list(node)) {
        queue.push(e.node);
        const again = await fs.lookup(node, e.name);
        if (!again) return `${e.name} is listed but not found`;
      }
      return undefined;
    });
    if (problem) return problem;
  }
  return undefined;
}

/** One case: open and walk the edited volume; a problem description, or undefined when all is well. */
export async function fuzzCase(open: (v: Volume) => Promise<VolumeFileSystem>, volume: Volume, budget: FuzzBudget, isRefusal: (e: Error) => boolean): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<string>((resolve) => (timer = setTimeout(() => resolve(`no result after ${budget.ms} ms`), budget.ms)));
  const work = (async (): Promise<string | undefined> => {
    let fs: VolumeFileSystem;
    try {
      fs = await open(volume);
    } catch (e) {
      return allowed(e) || isRefusal(e as Error) ? undefined : `open: unexpected ${(e as Error)?.name}: ${(e as Error)?.message}`;
    }
    return attempt(() => walk(fs, volume));
  })();
  try {
    return await Promise.race([work, hang]);
  } finally {
    clearTimeout(timer);
  }
}

/** Edits at the non-zero bytes of `image` inside `regions` (where the structures are), of interesting values. */
export function editsArb(image: Buffer, regions: readonly { start: number; end: number }[]): fc.Arbitrary<ByteEdit[]> {
  const spots: number[] = [];
  for (const r of regions) for (let i = r.start; i < r.end; i++) if (image[i] !== 0) spots.push(i);
  const value = fc.oneof(fc.constantFrom(0, 1, 0xff, 0x80, 0x7fffffff, 0xffffffff, 0x10000, 12), fc.nat({ max: 64 }), fc.nat({ max: 0xffffffff }));
  const edit = fc.record({ at: fc.nat({ max: spots.length - 1 }).map((i) => spots[i]!), value, width: fc.constantFrom<1 | 2 | 4>(1, 2, 4) });
  return fc.array(edit, { minLength: 1, maxLength: 4 });
}

/** The ranges a reader reads in a clean walk of `image`: where its structures lie. */
export async function readRegions(open: (v: Volume) => Promise<VolumeFileSystem>, name: string, image: Buffer): Promise<{ start: number; end: number }[]> {
  const regions: { start: number; end: number }[] = [];
  const plain = editedVolume(name, image, [], { ms: 0, readBytes: Number.MAX_SAFE_INTEGER });
  const volume: Volume = { ...plain, read: (offset, length) => (regions.push({ start: offset, end: offset + length }), plain.read(offset, length)) };
  const problem = await walk(await open(volume), volume);
  if (problem) throw new Error(`${name}: the clean volume does not walk: ${problem}`);
  return regions;
}
