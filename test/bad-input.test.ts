// The bad-input corpus: broken backups next to good ones in one btrfs storage. `inspect` names
// the file and the problem in one line; `list` and `serve` keep every good disk, hide the broken
// ones and say why once per backup; odd but valid names are served byte-exact.
import { chmod, mkdir, mkdtemp, readdir, rm, symlink, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';
import test from 'ava';
import { synthvhd } from './helpers/cli.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { type MbrData, serializeMbrData, serializeWholeDiskMbr } from './helpers/mbr-writer.js';
import { run } from './helpers/run.js';
import * as sc from './helpers/scenarios.js';
import { ServeTracker } from './helpers/serve-process.js';
import { guardStorage } from './helpers/storage-guard.js';
import { SMALL_PART_BYTES, smallTable } from './helpers/small-table.js';
import { treeFingerprint } from './helpers/tree-hash.js';

const TIME = '240201-1000';
const FOLDER = `${TIME}_Image_C`;
const RAW = `Image_C_${TIME}.raw`;
const RAW_VOLUME_OFFSET = 524288;
/** A SYSVOL image taken just before the C: image, so that the heuristic pairs them. */
const PARTNER_TIME = '240201-0958';
const PARTNER_FOLDER = `${PARTNER_TIME}_Image_SYSVOL`;
const PARTNER_MBR = `Image_SYSVOL_${PARTNER_TIME}.raw.mbr`;

/** Which file a message must name: the case's `.raw`, `.raw.mbr`, image folder or client folder. */
type Names = 'raw' | 'mbr' | 'folder' | 'client';

/** What a case must lead to. `names`: which path the one message must contain. */
type Outcome =
  | { readonly shown: false; readonly names: Names; readonly message: RegExp; readonly inspect?: false }
  | { readonly shown: true; readonly warning?: RegExp };

interface Case {
  readonly client: string;
  readonly what: string;
  readonly outcome: Outcome;
  /** Writes the case's client folder; the default writes a valid v0 image and then applies `change`. */
  readonly write?: (clientDir: string) => Promise<void>;
  readonly change?: (p: { dir: string; raw: string; mbr: string }) => Promise<void>;
  readonly mbr?: () => Buffer;
}

let v0: MbrData;
let v1: MbrData;
const bytes = (d: MbrData): Buffer => serializeMbrData(d);
const withHeader = (f: (h: Buffer) => void, fix = true): Buffer => {
  const header = Buffer.from(v1.gpt!.header.data);
  f(header);
  if (fix) {
    header.writeUInt32LE(0, 16);
    header.writeUInt32LE(crc32(header.subarray(0, header.readUInt32LE(12))), 16);
  }
  return bytes({ ...v1, gpt: { ...v1.gpt!, header: { ...v1.gpt!.header, data: header } } });
};
const cutAt = (b: Buffer, n: number): Buffer => b.subarray(0, n);
/** The offset of serial_number's u32 length: status, version, device, partition. */
const SERIAL_LEN_AT = 1 + 1 + 4 + 4;

const hidden = (names: Names, message: RegExp, inspect?: false): Outcome => ({ shown: false, names, message, ...(inspect === false && { inspect }) });

const CASES: Case[] = [
  { client: 'empty-mbr', what: 'empty .raw.mbr', mbr: () => Buffer.alloc(0), outcome: hidden('mbr', /empty \.raw\.mbr/) },
  { client: 'status-only-mbr', what: '.raw.mbr of one byte', mbr: () => Buffer.from([1]), outcome: hidden('mbr', /truncated/) },
  { client: 'truncated-v0', what: 'v0 .raw.mbr cut inside mbr_data', mbr: () => cutAt(bytes(v0), 200), outcome: hidden('mbr', /truncated/) },
  { client: 'truncated-v1', what: 'v1 .raw.mbr cut inside the GPT table', mbr: () => cutAt(bytes(v1), 2000), outcome: hidden('mbr', /truncated/) },
  { client: 'client-failure', what: 'status byte 0', mbr: () => Buffer.from([0, ...bytes(v0).subarray(1)]), outcome: hidden('mbr', /status byte is 0/) },
  { client: 'version-2', what: 'unknown version 2', mbr: () => Buffer.from([1, 2, ...bytes(v0).subarray(2)]), outcome: hidden('mbr', /unknown \.raw\.mbr version 2/) },
  { client: 'version-255', what: 'unknown version 255', mbr: () => Buffer.from([1, 255, ...bytes(v0).subarray(2)]), outcome: hidden('mbr', /unknown \.raw\.mbr version 255/) },
  { client: 'partition-0', what: 'partition number 0', mbr: () => bytes({ ...v0, partitionNumber: 0 }), outcome: hidden('mbr', /partition_number is 0/) },
  { client: 'partition-negative', what: 'partition number -1', mbr: () => bytes({ ...v0, partitionNumber: -1 }), outcome: hidden('mbr', /partition_number is -1/) },
  { client: 'partition-beyond', what: 'partition number 5 of a 1-entry table', mbr: () => bytes({ ...v0, partitionNumber: 5 }), outcome: hidden('mbr', /partition number 5 does not exist/) },
  { client: 'partition-huge', what: 'partition number 2^31-1', mbr: () => bytes({ ...v1, partitionNumber: 0x7fffffff }), outcome: hidden('mbr', /partition number 2147483647 does not exist/) },
  {
    client: 'partner-partition-beyond',
    what: "SYSVOL partner's partition number 5 of a 1-entry table",
    change: async ({ dir }) => {
      const p = join(dirname(dir), PARTNER_FOLDER);
      await mkdir(p);
      const raw = join(p, PARTNER_MBR.replace(/\.mbr$/, ''));
      await writeFile(raw, Buffer.alloc(512, 0xcd));
      await truncate(raw, RAW_VOLUME_OFFSET + 4096);
      await writeFile(`${raw}.mbr`, bytes({ ...v0, partitionNumber: 5 }));
      await writeFile(`${raw}.sync`, '');
    },
    // The C: disk is served without its partner, with a warning naming the partner's `.raw.mbr`.
    outcome: { shown: true, warning: /partners not assembled: \S+\/240201-0958_Image_SYSVOL\/Image_SYSVOL_240201-0958\.raw\.mbr: partition number 5 does not exist/ },
  },
  {
    client: 'string-past-end',
    what: 'serial length past the end of the file',
    mbr: () => {
      const b = Buffer.from(bytes(v0));
      b.writeUInt32LE(b.length, SERIAL_LEN_AT);
      return b;
    },
    outcome: hidden('mbr', /truncated/),
  },
  {
    client: 'string-huge',
    what: 'serial length 0xFFFFFFFF',
    mbr: () => {
      const b = Buffer.from(bytes(v0));
      b.writeUInt32LE(0xffffffff, SERIAL_LEN_AT);
      return b;
    },
    outcome: hidden('mbr', /over the 10 MiB limit/),
  },
  { client: 'mbr-data-short', what: 'mbr_data of 100 bytes', mbr: () => bytes({ ...v0, mbr: v0.mbr.subarray(0, 100) }), outcome: hidden('mbr', /mbr_data is 100 bytes/) },
  { client: 'gpt-header-pos', what: 'gpt_header_pos 1000', mbr: () => bytes({ ...v1, gpt: { ...v1.gpt!, header: { ...v1.gpt!.header, pos: 1000 } } }), outcome: hidden('mbr', /gpt_header_pos is 1000/) },
  { client: 'gpt-no-signature', what: 'GPT header without "EFI PART"', mbr: () => withHeader((h) => h.write('NOT PART', 0, 'latin1')), outcome: hidden('mbr', /no "EFI PART" signature/) },
  { client: 'gpt-entry-size', what: 'GPT entry size 0', mbr: () => withHeader((h) => h.writeUInt32LE(0, 84)), outcome: hidden('mbr', /entry size 0 is invalid/) },
  {
    client: 'gpt-header-crc',
    what: 'GPT header with a wrong CRC (served as stored, like UrBackup restore)',
    mbr: () => withHeader((h) => h.writeUInt32LE((h.readUInt32LE(16) ^ 1) >>> 0, 16), false),
    outcome: { shown: true, warning: /primary GPT header CRC does not match/ },
  },
  {
    client: 'gpt-table-crc',
    what: 'GPT table with a wrong CRC (served as stored)',
    mbr: () => {
      const table = Buffer.from(v1.gpt!.table.data);
      table[56] = 0x41; // the entry's name changes, the header's table CRC does not
      return bytes({ ...v1, gpt: { ...v1.gpt!, table: { ...v1.gpt!.table, data: table } } });
    },
    outcome: { shown: true, warning: /GPT partition table CRC does not match/ },
  },
  {
    client: 'gpt-100-tib',
    what: 'GPT (CRCs correct) whose backup header puts the disk end at 100 TiB',
    mbr: () => withHeader((h) => h.writeBigUInt64LE(BigInt(100 * 2 ** 40 / 512), 32)),
    outcome: hidden('folder', /over the VHDX maximum of 64 TiB/),
  },
  {
    client: 'gpt-entry-backwards',
    what: 'GPT entry that ends before it starts',
    mbr: () => {
      const table = Buffer.from(v1.gpt!.table.data);
      table.writeBigUInt64LE(10n, 40);
      const header = Buffer.from(v1.gpt!.header.data);
      header.writeUInt32LE(crc32(table.subarray(0, header.readUInt32LE(80) * header.readUInt32LE(84))), 88);
      header.writeUInt32LE(0, 16);
      header.writeUInt32LE(crc32(header.subarray(0, header.readUInt32LE(12))), 16);
      return bytes({ ...v1, gpt: { ...v1.gpt!, header: { ...v1.gpt!.header, data: header }, table: { ...v1.gpt!.table, data: table } } });
    },
    outcome: hidden('mbr', /ends \(LBA 10\) before it starts/),
  },
  { client: 'mbr-far-too-large', what: '.raw.mbr of 2 MiB that is not a whole-disk one', change: async ({ mbr }) => writeFile(mbr, Buffer.concat([bytes(v0), Buffer.alloc(2 << 20)])), outcome: hidden('mbr', /far too large/) },
  { client: 'missing-mbr', what: 'no .raw.mbr', change: async ({ mbr }) => rm(mbr), outcome: hidden('mbr', /missing/) },
  { client: 'no-raw', what: 'image folder without a .raw', change: async ({ raw }) => rm(raw), outcome: hidden('folder', /no Image_\*\.raw file/) },
  { client: 'short-raw', what: '.raw shorter than 512 KiB', change: async ({ raw }) => truncate(raw, 4096), outcome: hidden('raw', /shorter than the 512 KiB header/) },
  { client: 'volume-too-big', what: 'volume larger than its partition', change: async ({ raw }) => truncate(raw, RAW_VOLUME_OFFSET + SMALL_PART_BYTES + 4096), outcome: hidden('raw', /larger than its partition/) },
  { client: 'whole-disk-short', what: 'whole-disk .raw of only its 512 KiB tail', mbr: () => serializeWholeDiskMbr(Buffer.alloc(22)), change: async ({ raw }) => truncate(raw, RAW_VOLUME_OFFSET), outcome: hidden('raw', /too short to hold a disk/) },
  {
    client: 'raw-directory',
    what: '.raw that is a directory',
    change: async ({ raw }) => {
      await rm(raw);
      await mkdir(raw);
    },
    outcome: hidden('raw', /not a regular file/),
  },
  {
    client: 'raw-fifo',
    what: '.raw that is a FIFO (must not hang)',
    change: async ({ raw }) => {
      await rm(raw);
      await run('mkfifo', [raw]);
    },
    outcome: hidden('raw', /not a regular file/),
  },
  {
    client: 'mbr-fifo',
    what: '.raw.mbr that is a FIFO (must not hang)',
    change: async ({ mbr }) => {
      await rm(mbr);
      await run('mkfifo', [mbr]);
    },
    outcome: hidden('mbr', /not a regular file/),
  },
  {
    client: 'raw-symlink',
    what: '.raw that is a symlink (to /dev/zero; refused)',
    change: async ({ raw }) => {
      await rm(raw);
      await symlink('/dev/zero', raw);
    },
    outcome: hidden('raw', /symbolic link; refused/),
  },
  {
    client: 'mbr-symlink',
    what: '.raw.mbr that is a symlink (refused)',
    change: async ({ dir, mbr }) => {
      await writeFile(join(dir, 'elsewhere.mbr'), bytes(v0));
      await rm(mbr);
      await symlink(join(dir, 'elsewhere.mbr'), mbr);
    },
    outcome: hidden('mbr', /symbolic link; refused/),
  },
  {
    client: 'loop-a',
    what: 'client folder in a symlink loop (loop-a → loop-b → loop-a)',
    write: async (cdir) => {
      await symlink('loop-b', cdir);
      await symlink('loop-a', join(dirname(cdir), 'loop-b'));
    },
    outcome: hidden('client', /ELOOP/, false),
  },
  {
    client: 'image-folder-loop',
    what: 'image folder that is a symlink to itself',
    write: async (cdir) => {
      await mkdir(cdir);
      await symlink(FOLDER, join(cdir, FOLDER));
    },
    outcome: hidden('folder', /ELOOP/, false),
  },
  { client: 'valid-gpt', what: 'control: the unmutated v1 .mbr', mbr: () => bytes(v1), outcome: { shown: true } },
  { client: 'valid-mbr', what: 'control: the unmutated v0 .mbr', outcome: { shown: true } },
];

/** Valid client names that must be served correctly (copies of a real backup). */
const ODD_NAMES = ['with space', `quote's "double"`, '100% done', 'Ünïcødé-客户-🙂', `long-${'n'.repeat(200)}`];

let fs: LoopFs;
let work: string;
let storage: string;
let outside: string;
let bios: sc.Scenario;
let before: Record<string, string>;
const tracker = new ServeTracker();

function pathOf(c: Case, names: Names): string {
  const cdir = join(storage, c.client);
  const dir = join(cdir, FOLDER);
  return { client: cdir, folder: dir, raw: join(dir, RAW), mbr: join(dir, `${RAW}.mbr`) }[names];
}

async function writeCase(c: Case): Promise<void> {
  const cdir = join(storage, c.client);
  if (c.write) return c.write(cdir);
  const dir = join(cdir, FOLDER);
  await mkdir(dir, { recursive: true });
  const raw = join(dir, RAW);
  const mbr = `${raw}.mbr`;
  await writeFile(raw, Buffer.alloc(512, 0xab));
  await truncate(raw, RAW_VOLUME_OFFSET + SMALL_PART_BYTES);
  await writeFile(mbr, c.mbr ? c.mbr() : bytes(v0));
  await writeFile(`${raw}.sync`, '');
  await c.change?.({ dir, raw, mbr });
}

/** The tests run as root, who reads everything: permission cases run the CLI as nobody. */
const NOBODY = { user: 'nobody', group: 'nogroup' };

interface ListJson {
  disks: { client: string; folder: string; warnings: string[] }[];
  warnings: string[];
}

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-bad-'));
  fs = await makeLoopFs('btrfs', 1024);
  await chmod(dirname(fs.mountpoint), 0o755); // user nobody must reach the storage
  storage = join(fs.mountpoint, 'storage');
  outside = join(fs.mountpoint, 'outside');
  await mkdir(storage);
  [v0, v1] = [await smallTable('mbr', work), await smallTable('gpt', work)];
  bios = await sc.biosMbr({ storage, workDir: work, kind: 'btrfs' });
  for (const c of CASES) await writeCase(c);
  for (const name of ODD_NAMES) await run('cp', ['-a', '--reflink=always', join(storage, bios.client), join(storage, name)]);
  // A client folder that is a symlink to a folder outside the storage: followed, like ZFS image folders.
  await mkdir(outside);
  await run('cp', ['-a', '--reflink=always', join(storage, bios.client), join(outside, 'linked-client')]);
  await symlink(join(outside, 'linked-client'), join(storage, 'linked-client'));
  // Unreadable for anyone but root.
  for (const client of ['unreadable-mbr', 'unreadable-raw', 'unreadable-folder']) await writeCase({ client, what: client, outcome: { shown: true } });
  await chmod(join(storage, 'unreadable-mbr', FOLDER, `${RAW}.mbr`), 0);
  await chmod(join(storage, 'unreadable-raw', FOLDER, RAW), 0);
  await chmod(join(storage, 'unreadable-folder', FOLDER), 0);
  before = await treeFingerprint(storage);
});

guardStorage(() => ({ tracker, fs, work, storage, before }));

test('the corpus has at least 25 bad-input cases, each with its expected outcome', (t) => {
  t.true(CASES.filter((c) => c.what.length > 0).length >= 25 + 2, `${CASES.length} cases`);
});

for (const c of CASES) {
  const o = c.outcome;
  if (!o.shown && o.inspect === false) continue;
  test(`inspect: ${c.what}`, async (t) => {
    const r = await synthvhd(['inspect', join(storage, c.client, FOLDER)]);
    if (o.shown) {
      t.is(r.code, 0, r.stderr);
      if (o.warning) t.regex(r.stdout, new RegExp(`warning: .*${o.warning.source}`));
      return;
    }
    t.is(r.code, 1, r.stdout);
    const lines = r.stderr.trimEnd().split('\n');
    t.is(lines.length, 1, r.stderr);
    // The path and its colon: a `.raw` path alone is a prefix of its `.raw.mbr`'s.
    t.true(lines[0]!.includes(`${pathOf(c, o.names)}: `), `names ${pathOf(c, o.names)}: ${lines[0]}`);
    t.regex(lines[0]!, o.message);
  });
}

test('inspect of a .raw.mbr file directly: one line naming it', async (t) => {
  const c = CASES.find((x) => x.client === 'version-2')!;
  const r = await synthvhd(['inspect', pathOf(c, 'mbr')]);
  t.is(r.code, 1);
  t.regex(r.stderr.trim(), new RegExp(`^synthvhd: ${pathOf(c, 'mbr').replace(/[.]/g, '\\.')}: unknown \\.raw\\.mbr version 2`));
});

/** sc.biosMbr's client, its copies under odd names, and what only root can read. */
const GOOD_CLIENTS = ['bios-pc', ...ODD_NAMES, 'linked-client', 'unreadable-mbr', 'unreadable-raw', 'unreadable-folder'];

test('list: every good disk is listed, each broken backup is one warning naming its file', async (t) => {
  const r = await synthvhd(['list', '--storage', storage, '--json']);
  t.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as ListJson;
  const clients = j.disks.map((d) => d.client).sort();
  const expected = [...GOOD_CLIENTS, ...CASES.filter((c) => c.outcome.shown).map((c) => c.client)].sort();
  t.deepEqual(clients, expected);
  for (const c of CASES) {
    const o = c.outcome;
    if (o.shown) {
      const d = j.disks.find((x) => x.client === c.client)!;
      if (o.warning) t.true(d.warnings.some((w) => o.warning!.test(w)), `${c.what}: ${d.warnings.join('; ')}`);
      continue;
    }
    const mine = j.warnings.filter((w) => w.includes(join(storage, c.client) + (o.names === 'client' ? '' : '/')) || w.startsWith(`${pathOf(c, o.names)}:`));
    t.is(mine.length, 1, `${c.what}: ${mine.join(' | ')}`);
    t.true(mine[0]?.includes(`${pathOf(c, o.names)}: `), `${c.what}: ${mine[0]}`);
    t.regex(mine[0] ?? '', o.message, c.what);
  }
});

test('list as a user who cannot read some files: EACCES is a warning for those, the rest is listed', async (t) => {
  const r = await synthvhd(['list', '--storage', storage, '--json'], NOBODY);
  t.is(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as ListJson;
  const clients = new Set(j.disks.map((d) => d.client));
  for (const c of ['unreadable-mbr', 'unreadable-raw', 'unreadable-folder']) {
    t.false(clients.has(c), c);
    const mine = j.warnings.filter((w) => w.includes(`/${c}/`));
    t.is(mine.length, 1, mine.join(' | '));
    t.regex(mine[0] ?? '', /EACCES/);
  }
  t.true(clients.has(bios.client));
  t.true(clients.has('valid-gpt'));
  const inspect = await synthvhd(['inspect', join(storage, 'unreadable-raw', FOLDER)], NOBODY);
  t.is(inspect.code, 1);
  t.regex(inspect.stderr.trim(), new RegExp(`^synthvhd: ${join(storage, 'unreadable-raw', FOLDER, RAW).replace(/[.]/g, '\\.')}: cannot open \\(EACCES\\)$`));
});

test.serial('serve: good disks (odd names too) are byte-exact, broken ones are not shown, one log line each', async (t) => {
  const m = await tracker.mountpoint(work, 'mnt');
  const srv = await tracker.serve(['--storage', storage, '--mount', m, '--mode', 'passthrough'], 60_000);
  const shown = (await readdir(m)).sort();
  t.deepEqual(shown, [...GOOD_CLIENTS, ...CASES.filter((c) => c.outcome.shown).map((c) => c.client)].sort());
  const folderC = bios.images.C!.folder.split('/').at(-1)!;
  for (const client of [bios.client, ...ODD_NAMES, 'linked-client']) {
    const names = await readdir(join(m, client));
    t.deepEqual(names.filter((n) => /\.vhdx?$/.test(n)).sort(), [`${folderC}.vhd`, `${folderC}.vhdx`], client);
    // Beside them, the folders of the images the disk is made of (docs/browsing.md §1).
    t.true(names.includes(folderC) && names.every((n) => /\.vhdx?$/.test(n) || /^\d{6}-\d{4}_Image_/.test(n)), `${client}: ${names.join(', ')}`);
    const out = join(fs.mountpoint, `built-${ODD_NAMES.indexOf(client)}-${client.length}.vhdx`);
    const b = await synthvhd(['build', join(storage, client, folderC), '-o', out]);
    t.is(b.code, 0, b.stderr);
    await t.notThrowsAsync(run('cmp', [join(m, client, `${folderC}.vhdx`), out]), client);
    await rm(out);
  }
  for (const c of CASES.filter((x) => x.outcome.shown)) {
    await t.notThrowsAsync(run('sh', ['-c', `cat '${m}/${c.client}/${FOLDER}.vhdx' > /dev/null`]), c.what);
  }
  // Two more rescans (every 2 s) and reads of missing names must not repeat any line.
  await run('sh', ['-c', `cat '${m}/missing-mbr/${FOLDER}.vhd' 2>/dev/null; ls '${m}/raw-fifo' 2>/dev/null; true`]);
  await new Promise((r) => setTimeout(r, 5000));
  const log = srv.log();
  for (const c of CASES) {
    const o = c.outcome;
    const lines = log.split('\n').filter((l) => l.includes(o.shown ? `/${c.client}/` : o.names === 'client' ? pathOf(c, 'client') : `${pathOf(c, 'folder')}`));
    if (o.shown) {
      t.is(lines.length, o.warning ? 1 : 0, `${c.what}:\n${lines.join('\n')}`);
      if (o.warning) t.regex(lines[0]!, o.warning);
    } else {
      t.is(lines.length, 1, `${c.what}:\n${lines.join('\n')}`);
      t.regex(lines[0] ?? '', o.message);
    }
  }
  t.is(await srv.stop(), 0);
});
