// Detection of a volume's filesystem (src/filesystem/detect.ts) on volumes made by the real
// mkfs tools, and WOF-compressed files read through the detected NTFS reader (ntfs-wof.ts)
// against the bytes wimlib compressed.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { detectVolume } from '../src/filesystem/detect.js';
import { openFileVolume } from '../src/io/file-volume.js';
import { fileBytes, makeNtfsImage, withNtfs3g } from './helpers/ntfs-volume.js';
import { hexValue } from './helpers/ntfs-reparse.js';
import { requireTool, run } from './helpers/run.js';
import { WOF_CHUNKS, wofCompressedData, wofReparsePoint } from './helpers/wimlib.js';

let work: string;
test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-detect-'));
});
test.after.always(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function detected(image: string): Promise<{ kind: string; name: string }> {
  const volume = await openFileVolume(image, 0, (await stat(image)).size);
  try {
    const d = await detectVolume(volume);
    return { kind: d.kind, name: d.name };
  } finally {
    await volume.close();
  }
}

const MKFS: Record<string, { tool: string; args: string[]; mib: number; expect: { kind: string; name: string } }> = {
  ntfs: { tool: 'mkntfs', args: ['-F', '-Q', '-q'], mib: 16, expect: { kind: 'readable', name: 'NTFS' } },
  ext4: { tool: 'mkfs.ext4', args: ['-q', '-F'], mib: 16, expect: { kind: 'readable', name: 'ext4' } },
  fat32: { tool: 'mkfs.vfat', args: ['-F', '32'], mib: 64, expect: { kind: 'readable', name: 'FAT' } },
  fat16: { tool: 'mkfs.vfat', args: ['-F', '16'], mib: 16, expect: { kind: 'readable', name: 'FAT' } },
  xfs: { tool: 'mkfs.xfs', args: ['-q', '-f'], mib: 320, expect: { kind: 'unreadable', name: 'XFS' } },
  btrfs: { tool: 'mkfs.btrfs', args: ['-q', '-f'], mib: 128, expect: { kind: 'unreadable', name: 'btrfs' } },
};

for (const [name, m] of Object.entries(MKFS)) {
  test(`a volume made by ${m.tool} ${m.args.join(' ')} is detected as ${m.expect.name}`, async (t) => {
    requireTool(m.tool);
    const image = join(work, `${name}.img`);
    await run('truncate', ['-s', `${m.mib}M`, image]);
    await run(m.tool, [...m.args, image]);
    t.deepEqual(await detected(image), m.expect);
  });
}

test('zeros, a small volume and a BitLocker boot sector are named, not opened', async (t) => {
  const zeros = join(work, 'zeros.img');
  await writeFile(zeros, Buffer.alloc(1 << 20));
  t.deepEqual(await detected(zeros), { kind: 'unreadable', name: 'unknown' });
  const tiny = join(work, 'tiny.img');
  await writeFile(tiny, Buffer.alloc(100));
  t.deepEqual(await detected(tiny), { kind: 'unreadable', name: 'unknown' });
  const bitlocker = Buffer.alloc(1 << 20);
  bitlocker.write('-FVE-FS-', 3, 'latin1');
  bitlocker.writeUInt16LE(0xaa55, 510);
  await writeFile(join(work, 'bl.img'), bitlocker);
  t.deepEqual(await detected(join(work, 'bl.img')), { kind: 'unreadable', name: 'BitLocker' });
});

test('WOF-compressed files of every algorithm read through the detected NTFS reader', async (t) => {
  const image = join(work, 'wof.img');
  await makeNtfsImage(image, 32);
  // Compressible data with some noise, over several chunks of every algorithm.
  const data = Buffer.concat(Array.from({ length: 40 }, (_, i) => Buffer.concat([Buffer.from(`line ${i} `.repeat(300)), randomBytes(500)])));
  await withNtfs3g(image, join(work, 'wof-mnt'), ['streams_interface=xattr'], async (mnt) => {
    for (const { algorithm } of WOF_CHUNKS) {
      const f = join(mnt, `wof-${algorithm}.bin`);
      await run('truncate', ['-s', String(data.length), f]);
      await run('setfattr', ['-n', 'user.WofCompressedData', '-v', hexValue(wofCompressedData(data, algorithm)), f]);
      await run('setfattr', ['-n', 'system.ntfs_reparse_data', '-v', hexValue(wofReparsePoint(algorithm)), f]);
    }
  });
  const volume = await openFileVolume(image, 0, (await stat(image)).size);
  try {
    const d = await detectVolume(volume);
    if (d.kind !== 'readable') return t.fail(d.why);
    const fs = await d.open(volume, {});
    const root = await fs.root();
    for (const { algorithm } of WOF_CHUNKS) {
      const e = (await fs.lookup(root, `wof-${algorithm}.bin`))!;
      t.is(e.node.size, data.length);
      const bytes = await fileBytes(await fs.data(e.node));
      t.true(bytes.equals(data), `algorithm ${algorithm}: the decoded bytes are the original`);
    }
  } finally {
    await volume.close();
  }
});
