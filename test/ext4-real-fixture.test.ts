// The ext4 reader on genuine UrBackup 2.5.33 image backups (test/fixtures): each volume read
// inside its `.raw` from byte 524288, against the kernel's ext4 on a read-only loop mount of the
// same bytes and the file hashes recorded with the fixture; the storage is never written.
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { openExt4 } from '../src/filesystem/ext4/ext4-fs.js';
import { openFileVolume } from '../src/io/file-volume.js';
import { RAW_VOLUME_OFFSET } from '../src/urbackup/raw-file.js';
import { mountReadOnly, walkMount } from './helpers/ext4-volume.js';
import { type RealFixture, realRawPath, unpackRealFixture } from './helpers/real-fixture.js';
import { treeFingerprint } from './helpers/tree-hash.js';
import { walkReader } from './helpers/volume-walk.js';

let storage: string;
let fx: RealFixture;
let before: Record<string, string>;

test.before(async () => {
  storage = await mkdtemp(join(tmpdir(), 'synthvhd-ext4-real-'));
  fx = await unpackRealFixture(storage);
  before = await treeFingerprint(storage);
});

test.after.always(async () => {
  if (storage) await rm(storage, { recursive: true, force: true });
});

test.after('the storage is unchanged', async (t) => {
  t.deepEqual(await treeFingerprint(storage), before);
});

test('every genuine ext4 image: every path as the kernel reads it, and the recorded hashes', async (t) => {
  const ext4 = fx.images.filter((img) => Object.values(img.partitions).some((p) => p.fs === 'ext4'));
  t.true(ext4.length >= 2);
  for (const img of ext4) {
    const raw = realRawPath(fx, img);
    const size = (await stat(raw)).size - RAW_VOLUME_OFFSET;
    const volume = await openFileVolume(raw, RAW_VOLUME_OFFSET, size);
    const mounted = await mountReadOnly(raw, RAW_VOLUME_OFFSET, size);
    try {
      const actual = await walkReader(await openExt4(volume));
      t.deepEqual(Object.fromEntries(actual), Object.fromEntries(await walkMount(mounted.mountpoint)), img.folder);
      for (const [path, sha256] of Object.entries(img.partitions[String(img.partnum)]!.files)) t.is(actual.get(path)?.sha256, sha256, `${img.folder} ${path}`);
    } finally {
      await mounted.cleanup();
      await volume.close();
    }
  }
});
