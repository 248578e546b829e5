// The WOF file helper writes files the way Windows stores them: checked by reading them back
// with libfsntfs (an independent NTFS reader that decodes WOF), and by decoding their streams
// with wof.ts from a volume imaged the UrBackup way, inside a `.raw` from byte 524288
// (docs/filesystems-wof.md §1-2).
import { createHash } from 'node:crypto';
import { mkdtemp, open, readFile, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { WofStream } from '../src/filesystem/wof/wof.js';
import { parseWofReparse, wofFileData } from '../src/filesystem/wof/wof.js';
import { openFileVolume } from '../src/io/file-volume.js';
import { RAW_VOLUME_OFFSET } from '../src/urbackup/raw-file.js';
import { requireTool, run } from './helpers/run.js';
import { samples } from './helpers/sample-data.js';
import { REPARSE_XATTR, getXattr, writeWofFile } from './helpers/wof-file.js';
import { wofReparsePoint } from './helpers/wimlib.js';

const NTFS_BYTES = 64 << 20;
/** Debian's Python 3 with python3-libfsntfs (not a pyenv one). */
const PYTHON = '/usr/bin/python3';
const FILE_ATTRIBUTE_SPARSE_FILE = 0x200;
const FILE_ATTRIBUTE_REPARSE_POINT = 0x400;

/** What libfsntfs sees of each file: its size, attributes, data (decoded by libfsntfs), and WofCompressedData's runs. */
const LIBFSNTFS_DUMP = `
import hashlib, json, sys, pyfsntfs
v = pyfsntfs.volume()
v.open(sys.argv[1])
out = {}
for name in sys.argv[2:]:
    f = v.get_file_entry_by_path('\\\\' + name)
    s = f.get_alternate_data_stream_by_name('WofCompressedData')
    out[name] = {'size': f.size, 'flags': f.file_attribute_flags, 'sha256': hashlib.sha256(f.read()).hexdigest(),
                 'stream': s.size, 'streamSha256': hashlib.sha256(s.read()).hexdigest(), 'extents': [list(s.get_extent(i)[:2]) for i in range(s.number_of_extents)]}
print(json.dumps(out))
`;

interface Dumped {
  size: number;
  flags: number;
  sha256: string;
  stream: number;
  streamSha256: string;
  extents: [number, number][];
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Contents per algorithm: several chunks of text, random (stored raw), zeros and E8 code, different per file. */
const FILES = [0, 1, 2, 3].map((algorithm) => ({
  name: `wof-${algorithm}.bin`,
  algorithm,
  data: Buffer.concat(samples(5000 + 3001 * algorithm).map((s) => s.data)),
}));

let work = '';
test.before(async () => {
  requireTool('mkntfs');
  requireTool('ntfs-3g');
  work = await mkdtemp(join(tmpdir(), 'synthvhd-wof-'));
});
test.after.always(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** Writes FILES with the helper on a fresh NTFS image through ntfs-3g; returns the streams written. */
async function makeVolume(img: string): Promise<Map<string, Buffer>> {
  await run('truncate', ['-s', String(NTFS_BYTES), img]);
  await run('mkntfs', ['-F', '-f', '-q', img]);
  const mnt = `${img}.mnt`;
  await mkdir(mnt, { recursive: true });
  await run('ntfs-3g', ['-o', 'streams_interface=xattr', img, mnt]);
  const streams = new Map<string, Buffer>();
  try {
    for (const f of FILES) {
      const path = join(mnt, f.name);
      const stream = await writeWofFile(path, f.data, f.algorithm);
      streams.set(f.name, stream);
      // Read back through ntfs-3g while it still knows the file: it refuses an unknown reparse tag
      // on a fresh lookup, and hides the named stream once the reparse point is set.
      if (!getXattr(path, REPARSE_XATTR).equals(wofReparsePoint(f.algorithm))) throw new Error(`${f.name}: the reparse point read back differs`);
    }
  } finally {
    await run('umount', [mnt]);
  }
  return streams;
}

test('libfsntfs reads the helper\'s files as WOF-compressed files with the right bytes', async (t) => {
  const img = join(work, 'a.img');
  const streams = await makeVolume(img);
  const dump = JSON.parse(await run(PYTHON, ['-c', LIBFSNTFS_DUMP, img, ...FILES.map((f) => f.name)])) as Record<string, Dumped>;
  for (const f of FILES) {
    const d = dump[f.name]!;
    t.is(d.size, f.data.length, `${f.name}: the unnamed stream's size is the uncompressed size`);
    t.is(d.flags & (FILE_ATTRIBUTE_SPARSE_FILE | FILE_ATTRIBUTE_REPARSE_POINT), FILE_ATTRIBUTE_SPARSE_FILE | FILE_ATTRIBUTE_REPARSE_POINT, f.name);
    t.is(d.streamSha256, sha256(streams.get(f.name)!), `${f.name}: WofCompressedData holds the stream written`);
    t.is(d.sha256, sha256(f.data), `${f.name}: libfsntfs decodes it to the data`);
  }
});

test('wof.ts decodes the helper\'s files from a volume inside a .raw at 524288, the storage unchanged', async (t) => {
  const img = join(work, 'b.img');
  await makeVolume(img);
  const dump = JSON.parse(await run(PYTHON, ['-c', LIBFSNTFS_DUMP, img, ...FILES.map((f) => f.name)])) as Record<string, Dumped>;
  const raw = join(work, 'Image_C_240101-1200.raw');
  const out = await open(raw, 'w');
  await out.write(await readFile(img), 0, NTFS_BYTES, RAW_VOLUME_OFFSET);
  await out.close();
  const before = sha256(await readFile(raw));
  const volume = await openFileVolume(raw, RAW_VOLUME_OFFSET, NTFS_BYTES);
  try {
    for (const f of FILES) {
      const { extents, stream: size } = dump[f.name]!;
      // The stream's runs, as libfsntfs located them: volume offsets of consecutive pieces.
      const stream: WofStream = {
        size,
        async read(pos, length) {
          const parts: Buffer[] = [];
          let streamAt = 0;
          for (const [at, len] of extents) {
            const lo = Math.max(pos, streamAt);
            const hi = Math.min(pos + length, streamAt + len, size);
            if (lo < hi) parts.push(await volume.read(at + lo - streamAt, hi - lo));
            streamAt += len;
          }
          return Buffer.concat(parts);
        },
      };
      const data = wofFileData(stream, f.data.length, parseWofReparse(wofReparsePoint(f.algorithm), f.name), { volume, file: f.name });
      if (data.kind !== 'decoded') return t.fail();
      t.true((await data.read(0, data.size)).equals(f.data), f.name);
    }
  } finally {
    await volume.close();
  }
  t.is(sha256(await readFile(raw)), before, 'the .raw is unchanged');
});
