// FAT volumes made with mkfs.vfat and written with mtools (this machine has no vfat driver), and
// mtools as the oracle: its bare listing, its attributes and a recursive copy of every file.
import { createHash } from 'node:crypto';
import { lstat, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './run.js';

/** mtools without its geometry checks, in a locale that is never translated, FAT local time = UTC. */
export const MTOOLS_ENV: NodeJS.ProcessEnv = { ...process.env, MTOOLS_SKIP_CHECK: '1', LC_ALL: 'C.UTF-8', TZ: 'UTC' };

/** mtools' `-i` argument for a volume at `offset` of `img`. */
export const mtoolsImage = (img: string, offset = 0): string => (offset ? `${img}@@${offset}` : img);

export async function mtools(cmd: string, args: readonly string[]): Promise<string> {
  return run(cmd, args, { env: MTOOLS_ENV });
}

export interface FatOracleNode {
  readonly type: 'file' | 'dir';
  readonly size: number;
  readonly mtimeMs: number;
  readonly sha256?: string;
  /** mattrib's letters among A, S, H, R. */
  readonly attributes: string;
}

/** `mattrib -/` lines: attribute letters, then the path. */
async function attributes(image: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const line of (await mtools('mattrib', ['-/', '-i', image, '::/'])).split('\n')) {
    const at = line.indexOf('::/');
    if (at < 0) continue;
    out.set(line.slice(at + 3), [...line.slice(0, at)].filter((c) => 'ASHR'.includes(c)).sort().join(''));
  }
  return out;
}

/** What mtools says of every file and folder: names from `mdir -a -/ -b`, the rest from `mcopy -s -m`. */
export async function mtoolsWalk(image: string): Promise<Map<string, FatOracleNode>> {
  const listed = (await mtools('mdir', ['-a', '-/', '-b', '-i', image, '::'])).split('\n').filter((l) => l.startsWith('::/')).map((l) => l.slice(3).replace(/\/$/, ''));
  const attrs = await attributes(image);
  const copy = await mkdtemp(join(tmpdir(), 'synthvhd-fat-copy-'));
  try {
    if (listed.length > 0) await mtools('mcopy', ['-s', '-n', '-m', '-i', image, '::/*', copy]);
    const out = new Map<string, FatOracleNode>();
    const visit = async (rel: string): Promise<void> => {
      const abs = join(copy, rel);
      const st = await lstat(abs);
      const attributes = attrs.get(rel) ?? '';
      if (st.isDirectory()) {
        out.set(rel, { type: 'dir', size: 0, mtimeMs: st.mtimeMs, attributes });
        for (const name of await readdir(abs)) await visit(rel ? `${rel}/${name}` : name);
      } else {
        out.set(rel, { type: 'file', size: st.size, mtimeMs: st.mtimeMs, sha256: createHash('sha256').update(await readFile(abs)).digest('hex'), attributes });
      }
    };
    for (const name of await readdir(copy)) await visit(name);
    const missing = listed.filter((p) => !out.has(p));
    if (missing.length > 0) throw new Error(`${image}: mcopy did not copy ${missing.join(', ')}`);
    return out;
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
}
