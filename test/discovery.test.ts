// What counts as an image backup in a storage folder (docs/urbackup-raw-format.md §1).
import { cp, mkdir, mkdtemp, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { synthvhd } from './helpers/cli.js';
import { type RealFixture, unpackRealFixture } from './helpers/real-fixture.js';

let work: string;
let storage: string;
let fx: RealFixture;

/** Copies a genuine image folder to `client/folder`, renaming its files to the folder's timestamp and letter. */
async function image(client: string, ts: string, letter: string, at = join(storage, client, `${ts}_Image_${letter}`)): Promise<string> {
  const src = fx.images.find((i) => i.folder.endsWith('loop2p1'))!;
  await cp(join(fx.storage, src.client, src.folder), at, { recursive: true });
  const oldTs = src.folder.slice(0, 11);
  for (const suffix of ['', '.mbr', '.sync', '.hash', '.bitmap', '.cbitmap']) {
    await rename(join(at, `Image__dev_loop2p1_${oldTs}.raw${suffix}`), join(at, `Image_${letter}_${ts}.raw${suffix}`));
  }
  return at;
}

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-discovery-'));
  const genuine = join(work, 'genuine');
  await mkdir(genuine);
  fx = await unpackRealFixture(genuine);
  storage = join(work, 'storage');
  await mkdir(join(storage, 'pc1'), { recursive: true });
  await image('pc1', '240101-1200', 'C');
  await image('pc1', '240102-1200', 'D');
  // ZFS: the image folder is a symlink to the dataset's mount point (§1.3).
  await image('pc1', '240103-1200', 'C', join(work, 'zfs-dataset-mount'));
  await symlink(join(work, 'zfs-dataset-mount'), join(storage, 'pc1', '240103-1200_Image_C'));
  // Incomplete: no .raw.sync.
  const inc = await image('pc1', '240104-1200', 'C');
  await unlink(join(inc, 'Image_C_240104-1200.raw.sync'));
  // Things that are not image backups (§1.2).
  await mkdir(join(storage, 'pc1', '240101-1300'));
  await writeFile(join(storage, 'pc1', '240101-1300', 'file.txt'), 'a file backup');
  await symlink('240101-1300', join(storage, 'pc1', 'current'));
  await mkdir(join(storage, 'pc1', '240101-1200_Image_C_mnt'));
  await mkdir(join(storage, 'pc1', '240101-1200_Image_C_mnt2'));
  await mkdir(join(storage, 'pc1', '240105-1200_Image_C_new'));
  await mkdir(join(storage, 'pc1', '.hidden_Image_C'));
  await writeFile(join(storage, 'pc1', 'stray.txt'), 'x');
  await mkdir(join(storage, 'urbackup'));
  await writeFile(join(storage, 'urbackup', 'backup_server.db.txt'), 'not a client');
  await mkdir(join(storage, '.synthvhd-cache'));
  await writeFile(join(storage, 'clients.txt'), 'stray file at the top');
  // A folder without its .raw.mbr: a warning naming the file, the rest still listed.
  const nombr = await image('pc2', '240101-0800', 'C');
  await unlink(join(nombr, 'Image_C_240101-0800.raw.mbr'));
  // A symlinked .raw is refused.
  const linked = await image('pc2', '240101-0900', 'C');
  await rename(join(linked, 'Image_C_240101-0900.raw'), join(work, 'elsewhere.raw'));
  await symlink(join(work, 'elsewhere.raw'), join(linked, 'Image_C_240101-0900.raw'));
});

test.after.always(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

interface Listing {
  disks: { client: string; folder: string }[];
  warnings: string[];
}

async function list(...extra: string[]): Promise<Listing> {
  const r = await synthvhd(['list', '--storage', storage, '--json', ...extra]);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as Listing;
}

test('only complete image backups are disks: subvolume/plain folders and ZFS folder symlinks; nothing else', async (t) => {
  const { disks, warnings } = await list();
  t.deepEqual(disks.map((d) => `${d.client}/${d.folder}`).sort(), ['pc1/240101-1200_Image_C', 'pc1/240102-1200_Image_D', 'pc1/240103-1200_Image_C']);
  t.is(warnings.length, 2, warnings.join('\n'));
  t.true(warnings.some((w) => /240101-0800_Image_C\/Image_C_240101-0800\.raw\.mbr: missing/.test(w)));
  t.true(warnings.some((w) => /Image_C_240101-0900\.raw: is a symbolic link; refused/.test(w)));
});

test('--show-incomplete adds images without .raw.sync', async (t) => {
  const { disks } = await list('--show-incomplete');
  t.true(disks.some((d) => d.folder === '240104-1200_Image_C'));
});

test('a storage that does not exist is one clear error and exit 1', async (t) => {
  const r = await synthvhd(['list', '--storage', join(work, 'nope')]);
  t.is(r.code, 1);
  t.regex(r.stderr, /^synthvhd: .*nope: cannot read the storage folder \(ENOENT\)\n$/);
});

test('usage errors exit 2 and say what is wrong', async (t) => {
  const r = await synthvhd(['build', join(storage, 'pc1', '240101-1200_Image_C'), '-o', join(work, 'x.img')]);
  t.is(r.code, 2);
  t.regex(r.stderr, /must end in \.vhd or \.vhdx/);
  const r2 = await synthvhd(['list']);
  t.is(r2.code, 2);
  t.regex(r2.stderr, /Missing required argument: storage/);
});
