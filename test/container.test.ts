import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerError, type DiskImage } from '../src/container/disk-image.js';
import { crc32c } from '../src/container/crc32c.js';
import { msGuid, nameBasedId } from '../src/base/guid.js';
import { VHD_MAX_DISK_SIZE, canBeVhd, chsGeometry, vhdChecksum, vhdFooter, vhdLayout } from '../src/container/vhd.js';
import { VHDX_HEADER_1_OFFSET, VHDX_HEADER_2_OFFSET, VHDX_REGION_TABLE_1_OFFSET, VHDX_REGION_TABLE_2_OFFSET, VHDX_REGION_TABLE_SIZE, vhdxLayout, vhdxPayloadOffset } from '../src/container/vhdx.js';
import { type Layout, type Piece, type SourceFile, paint } from '../src/disk/layout.js';
import type { Bytes } from '../src/base/units.js';
import { type BackingFd, readLayout } from '../src/io/layout-reader.js';
import { checkDynamicVhd, checkVhd, checkVhdx } from './helpers/container-check.js';
import { vhdimountEquals } from './helpers/container-read.js';
import { DYNAMIC_VHD_BLOCK_SIZE, dynamicVhdLayout, dynamicVhdSize } from '../src/container/vhd-dynamic.js';
import { DYNAMIC_VHDX_BLOCK_SIZE, dynamicVhdxLayout, dynamicVhdxSize } from '../src/container/vhdx.js';
import { type DataMap, type PresentBlocks, presentBlocks } from '../src/disk/present-blocks.js';
import { sourceData } from '../src/io/source-data.js';
import { requireTool, run } from './helpers/run.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

for (const tool of ['qemu-img', 'vhdiinfo', 'vhdimount', 'fusermount']) requireTool(tool);

async function tempDir(t: ExecutionContext, base = tmpdir()): Promise<string> {
  const dir = await mkdtemp(join(base, 'synthvhd-container-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a layout into a real file, leaving zero segments as holes, through readLayout. */
async function writeLayout(layout: Layout, path: string): Promise<void> {
  const fds = new Map<string, number>();
  const fdOf = (s: SourceFile): BackingFd => {
    let fd = fds.get(s.path);
    if (fd === undefined) fds.set(s.path, (fd = openSync(s.path, 'r')));
    return { fd };
  };
  const out = await open(path, 'w');
  const buf = Buffer.alloc(4 * MiB);
  try {
    for (const seg of layout.segments) {
      if (seg.kind === 'zero') continue;
      for (let pos = seg.start; pos < seg.start + seg.length; pos += buf.length) {
        const n = await readLayout(layout, pos, buf, Math.min(buf.length, seg.start + seg.length - pos), fdOf);
        await out.write(buf, 0, n, pos);
      }
    }
    await out.truncate(layout.size);
  } finally {
    await out.close();
    for (const fd of fds.values()) closeSync(fd);
  }
}

/** A sparse backing file: random data in a few ranges, holes in between. */
async function sparseSource(dir: string, name: string, size: Bytes): Promise<SourceFile> {
  const path = join(dir, name);
  const fh = await open(path, 'w');
  try {
    for (let pos = 0; pos < size; pos += 2 * MiB) await fh.write(randomBytes(Math.min(768 * KiB, size - pos)), 0, undefined, pos);
    await fh.truncate(size);
  } finally {
    await fh.close();
  }
  return { path };
}

/** A small disk of `size` bytes: file pieces at aligned and unaligned places, bytes pieces, zero gaps. */
async function smallDisk(dir: string, size: Bytes, sectorSize: 512 | 4096): Promise<DiskImage> {
  const source = await sparseSource(dir, `source-${sectorSize}.raw`, 12 * MiB);
  const pieces: Piece[] = [
    { kind: 'bytes', start: 0, data: randomBytes(sectorSize) },
    { kind: 'file', start: MiB, length: 9 * MiB, source, offset: 0 },
    { kind: 'file', start: 63 * 512 + 16 * MiB, length: 3 * MiB + 512, source, offset: 5 * MiB + 512 },
    { kind: 'bytes', start: size - 2 * sectorSize, data: randomBytes(sectorSize) },
  ];
  return { layout: paint(size, pieces), sectorSize, id: nameBasedId(`test disk ${dir}`), timestamp: new Date('2023-05-20T01:43:00Z') };
}

/** Writes the disk and both containers of it, and checks them against each other with qemu-img. */
async function bothContainersMatch(t: ExecutionContext, disk: DiskImage, dir: string): Promise<{ raw: string; vhd: string; vhdx: string }> {
  const raw = join(dir, 'disk.raw');
  const vhd = join(dir, 'x.vhd');
  const vhdx = join(dir, 'x.vhdx');
  await writeLayout(disk.layout, raw);
  await writeLayout(vhdLayout(disk), vhd);
  await writeLayout(vhdxLayout(disk), vhdx);
  t.regex(await run('qemu-img', ['compare', '-f', 'raw', '-F', 'vpc', raw, vhd]), /Images are identical/);
  t.regex(await run('qemu-img', ['compare', '-f', 'raw', '-F', 'vhdx', raw, vhdx]), /Images are identical/);
  t.regex(await run('qemu-img', ['check', '-f', 'vhdx', vhdx]), /No errors were found/);
  t.is(JSON.parse(await run('qemu-img', ['info', '-f', 'vpc', '--output=json', vhd]))['virtual-size'], disk.layout.size);
  return { raw, vhd, vhdx };
}

async function footerOf(path: string): Promise<Buffer> {
  const data = await readFile(path);
  return data.subarray(data.length - 512);
}

test('CRC-32C check value of "123456789" is 0xE3069283', (t) => {
  t.is(crc32c(Buffer.from('123456789', 'latin1')), 0xe3069283);
});

test('CHS geometry follows the VHD spec', (t) => {
  t.deepEqual(chsGeometry(8 * MiB), { cylinders: 240, heads: 4, sectorsPerTrack: 17 });
  t.deepEqual(chsGeometry(VHD_MAX_DISK_SIZE), { cylinders: 65535, heads: 16, sectorsPerTrack: 255 });
  // 10 GiB passes the 17 and 31 sectors-per-track steps and lands on 63 (qemu-img agrees).
  t.deepEqual(chsGeometry(10 * GiB), { cylinders: 20805, heads: 16, sectorsPerTrack: 63 });
  t.deepEqual(chsGeometry(64 * GiB), { cylinders: 32896, heads: 16, sectorsPerTrack: 255 });
});

test('VHD footer: constants, time stamp and checksum', (t) => {
  const id = nameBasedId('footer');
  const f = vhdFooter(8 * MiB, id, new Date('2000-01-01T00:01:40Z'));
  t.is(f.length, 512);
  t.is(f.toString('latin1', 0, 8), 'conectix');
  t.is(f.readBigUInt64BE(16), 0xffffffffffffffffn);
  t.is(f.readUInt32BE(24), 100);
  t.is(f.toString('latin1', 28, 32), 'win ');
  t.is(f.readUInt32BE(60), 2);
  t.true(f.subarray(68, 84).equals(id));
  t.is(f.readUInt32BE(64), vhdChecksum(f));
  let sum = 0;
  for (let i = 0; i < 512; i++) if (i < 64 || i >= 68) sum += f[i]!;
  t.is((sum + f.readUInt32BE(64)) >>> 0, 0xffffffff, 'checksum is the one\'s complement of the byte sum');
});

test('GUIDs are stored in Microsoft mixed-endian form', (t) => {
  t.is(msGuid('CAA16737-FA36-4D43-B3B6-33F0AA44E76B').toString('hex'), '3767a1ca36fa434db3b633f0aa44e76b');
  t.true(nameBasedId('a').equals(nameBasedId('a')));
  t.false(nameBasedId('a').equals(nameBasedId('b')));
});

test('canBeVhd refuses what a VHD cannot hold, vhdLayout throws its reason', (t) => {
  t.is(canBeVhd({ size: VHD_MAX_DISK_SIZE, sectorSize: 512 }), null);
  t.regex(canBeVhd({ size: VHD_MAX_DISK_SIZE + 512, sectorSize: 512 }) ?? '', /2040 GiB/);
  t.regex(canBeVhd({ size: 8 * MiB, sectorSize: 4096 }) ?? '', /512-byte sectors/);
  t.regex(canBeVhd({ size: 8 * MiB + 100, sectorSize: 512 }) ?? '', /multiple of 512/);
  const disk: DiskImage = { layout: paint(3 * TiB, []), sectorSize: 512, id: nameBasedId('big'), timestamp: new Date() };
  t.throws(() => vhdLayout(disk), { instanceOf: ContainerError, message: /2040 GiB/ });
});

test('vhdxLayout refuses disks over 64 TiB or not a whole number of sectors', (t) => {
  const disk = (size: Bytes, sectorSize: 512 | 4096): DiskImage => ({ layout: paint(size, []), sectorSize, id: nameBasedId('x'), timestamp: new Date() });
  t.throws(() => vhdxLayout(disk(64 * TiB + MiB, 512)), { instanceOf: ContainerError, message: /64 TiB/ });
  t.throws(() => vhdxLayout(disk(8 * MiB + 512, 4096)), { instanceOf: ContainerError, message: /multiple of the 4096-byte sector/ });
  t.notThrows(() => vhdxLayout(disk(64 * TiB, 512)));
});

test('huge disks get their containers instantly, without copying the disk data', (t) => {
  const source = { path: '/nonexistent/huge.raw' };
  const huge = (size: Bytes): DiskImage => ({
    layout: paint(size, [{ kind: 'file', start: MiB, length: size - 2 * MiB, source, offset: 0 }]),
    sectorSize: 512,
    id: nameBasedId(`huge ${size}`),
    timestamp: new Date(),
  });
  const started = Date.now();
  const vhd = vhdLayout(huge(VHD_MAX_DISK_SIZE));
  const vhdx = vhdxLayout(huge(2 * TiB));
  const max = vhdxLayout(huge(64 * TiB));
  t.log(`built in ${Date.now() - started} ms`);
  t.is(vhd.size, VHD_MAX_DISK_SIZE + 512);
  const p = vhdxPayloadOffset(2 * TiB, 512);
  t.is(p % MiB, 0);
  t.true(vhdx.segments.some((s) => s.kind === 'file' && s.start === p + MiB && s.length === 2 * TiB - 2 * MiB && s.offset === 0));
  const bytesIn = (l: Layout): number => l.segments.reduce((n, s) => n + (s.kind === 'bytes' ? s.length : 0), 0);
  t.true(bytesIn(max) < 17 * MiB, `64 TiB VHDX holds ${bytesIn(max)} bytes in memory`);
  t.is(max.size, vhdxPayloadOffset(64 * TiB, 512) + 64 * TiB);
});

test('512-byte-sector disk: VHD and VHDX match the raw disk for qemu-img and libvhdi', async (t) => {
  const dir = await tempDir(t);
  // Neither a whole number of MiB nor of 32 MiB blocks: exercises the partial last block.
  const size = 37 * MiB + 3 * 512;
  const disk = await smallDisk(dir, size, 512);
  const { vhd, vhdx } = await bothContainersMatch(t, disk, dir);
  t.is(JSON.parse(await run('qemu-img', ['info', '-f', 'vhdx', '--output=json', vhdx]))['virtual-size'], size);
  t.is((await footerOf(vhd)).toString('latin1', 28, 32), 'win ');

  const vhdInfo = await run('vhdiinfo', [vhd]);
  t.regex(vhdInfo, /Format\s*:\s*VHD \(version 1\)/);
  t.regex(vhdInfo, /Disk type\s*:\s*Fixed/);
  t.regex(vhdInfo, new RegExp(`Media size\\s*:.*\\(${size} bytes\\)`));
  const vhdxInfo = await run('vhdiinfo', [vhdx]);
  t.regex(vhdxInfo, /Format\s*:\s*VHDX/);
  t.regex(vhdxInfo, /Disk type\s*:\s*Fixed/);
  t.regex(vhdxInfo, new RegExp(`Media size\\s*:.*\\(${size} bytes\\)`));
  t.regex(vhdxInfo, /Bytes per sector\s*:\s*512 bytes/);

  t.deepEqual(await checkVhd(vhd), []);
  t.deepEqual(await checkVhdx(vhdx), []);
});

test('4096-byte-sector VHDX: libvhdi reads it with 4096-byte sectors and identical bytes', async (t) => {
  const dir = await tempDir(t);
  const size = 40 * MiB;
  const disk = await smallDisk(dir, size, 4096);
  t.regex(canBeVhd({ size, sectorSize: 4096 }) ?? '', /512-byte sectors/);
  const raw = join(dir, 'disk.raw');
  const vhdx = join(dir, 'x.vhdx');
  await writeLayout(disk.layout, raw);
  await writeLayout(vhdxLayout(disk), vhdx);
  t.deepEqual(await checkVhdx(vhdx), []);

  const info = await run('vhdiinfo', [vhdx]);
  t.regex(info, /Disk type\s*:\s*Fixed/);
  t.regex(info, /Bytes per sector\s*:\s*4096 bytes/);
  t.regex(info, new RegExp(`Media size\\s*:.*\\(${size} bytes\\)`));

  const mnt = join(dir, 'mnt');
  await mkdir(mnt);
  await run('vhdimount', [vhdx, mnt]);
  t.teardown(() => run('fusermount', ['-u', mnt]).then(() => undefined));
  const [mounted, expected] = await Promise.all([readFile(join(mnt, 'vhdi1')), readFile(raw)]);
  t.is(mounted.length, size);
  t.true(mounted.equals(expected), 'vhdimount shows the raw disk bytes');
});

test('sparse 6 GiB disk: markers around the 4 GiB chunk boundary survive in VHD and VHDX', async (t) => {
  // On tmpfs: qemu-img compare reads every hole of the VHDX, which takes ~20 s on ext4 here and
  // ~1 s on tmpfs. The holes cost no memory; only the few MiB written do.
  const dir = await tempDir(t, '/dev/shm');
  const size = 6 * GiB;
  const source = await sparseSource(dir, 'source.raw', 4 * MiB);
  const marker = (start: Bytes): Piece => ({ kind: 'bytes', start, data: randomBytes(512) });
  const pieces: Piece[] = [
    marker(0),
    marker(4 * GiB - 32 * MiB),
    marker(4 * GiB - 512),
    marker(4 * GiB),
    marker(4 * GiB + 32 * MiB - 512),
    marker(4 * GiB + 32 * MiB),
    { kind: 'file', start: 4 * GiB - 2 * MiB, length: 4 * MiB, source, offset: 0 },
    marker(size - 512),
  ];
  const disk: DiskImage = { layout: paint(size, pieces), sectorSize: 512, id: nameBasedId('six'), timestamp: new Date() };
  const { vhd, vhdx } = await bothContainersMatch(t, disk, dir);
  t.deepEqual(await checkVhd(vhd), []);
  t.deepEqual(await checkVhdx(vhdx), []);
});

test('two builds of the same disk are byte-identical', async (t) => {
  const dir = await tempDir(t);
  const disk = await smallDisk(dir, 20 * MiB, 512);
  const again: DiskImage = { ...disk, id: Buffer.from(disk.id), timestamp: new Date(disk.timestamp.getTime()) };
  for (const build of [vhdLayout, vhdxLayout]) {
    const [a, b] = [build(disk), build(again)];
    t.is(a.size, b.size);
    const bufA = Buffer.alloc(a.size);
    const bufB = Buffer.alloc(b.size);
    const fd = openSync(join(dir, 'source-512.raw'), 'r');
    try {
      await readLayout(a, 0, bufA, a.size, () => ({ fd }));
      await readLayout(b, 0, bufB, b.size, () => ({ fd }));
    } finally {
      closeSync(fd);
    }
    t.true(bufA.equals(bufB), `${build.name} builds differ`);
  }
});

/** Rewrites a region of a file in place. */
async function patch(path: string, pos: number, length: number, edit: (b: Buffer) => void): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    const b = Buffer.alloc(length);
    await fh.read(b, 0, length, pos);
    edit(b);
    await fh.write(b, 0, length, pos);
  } finally {
    await fh.close();
  }
}

function fixCrc(b: Buffer): void {
  b.writeUInt32LE(0, 4);
  b.writeUInt32LE(crc32c(b), 4);
}

test('the strict checker catches what qemu-img and libvhdi let pass', async (t) => {
  const dir = await tempDir(t);
  const disk = await smallDisk(dir, 20 * MiB, 512);
  const broken = async (name: string, edit: (path: string) => Promise<void>): Promise<string[]> => {
    const path = join(dir, name);
    await writeLayout(name.endsWith('.vhdx') ? vhdxLayout(disk) : vhdLayout(disk), path);
    await edit(path);
    return name.endsWith('.vhdx') ? checkVhdx(path) : checkVhd(path);
  };
  const headerCrc = await broken('header-crc.vhdx', (p) => patch(p, VHDX_HEADER_2_OFFSET + 4, 1, (b) => void (b[0]! ^= 0xff)));
  t.true(headerCrc.some((m) => /header 2: CRC-32C is wrong/.test(m)), headerCrc.join('\n'));

  const equalSeq = await broken('equal-seq.vhdx', async (p) => {
    const h1 = (await readFile(p)).subarray(VHDX_HEADER_1_OFFSET, VHDX_HEADER_1_OFFSET + 8 + 8);
    await patch(p, VHDX_HEADER_2_OFFSET, 4096, (b) => {
      h1.copy(b, 8, 8, 16);
      fixCrc(b);
    });
  });
  t.true(equalSeq.some((m) => /both headers have SequenceNumber/.test(m)), equalSeq.join('\n'));

  const misaligned = await broken('misaligned.vhdx', async (p) => {
    for (const at of [VHDX_REGION_TABLE_1_OFFSET, VHDX_REGION_TABLE_2_OFFSET]) {
      await patch(p, at, VHDX_REGION_TABLE_SIZE, (b) => {
        // Entry 1 is the metadata region: move it 64 KiB off its 1 MiB boundary.
        b.writeBigUInt64LE(b.readBigUInt64LE(16 + 32 + 16) + 64n * 1024n, 16 + 32 + 16);
        fixCrc(b);
      });
    }
  });
  t.true(misaligned.some((m) => /metadata region offset \d+ is not a multiple of 1 MiB/.test(m)), misaligned.join('\n'));

  const badTable2 = await broken('region-table-2.vhdx', (p) => patch(p, VHDX_REGION_TABLE_2_OFFSET + 12, 1, (b) => void (b[0] = 1)));
  t.true(badTable2.some((m) => /region table copies differ/.test(m)), badTable2.join('\n'));

  const chs = await broken('chs.vhd', async (p) => {
    const size = (await readFile(p)).length;
    await patch(p, size - 512, 512, (b) => {
      b.writeUInt8(16, 58);
      b.writeUInt32BE(vhdChecksum(b), 64);
    });
  });
  t.true(chs.some((m) => /CHS .* is not the spec's/.test(m)), chs.join('\n'));
  // qemu-img still opens it: the checksum is right and creator 'win ' makes it ignore CHS.
  await t.notThrowsAsync(run('qemu-img', ['info', '-f', 'vpc', join(dir, 'chs.vhd')]));

  const checksum = await broken('checksum.vhd', async (p) => {
    const size = (await readFile(p)).length;
    await patch(p, size - 512 + 64, 1, (b) => void (b[0]! ^= 1));
  });
  t.true(checksum.some((m) => /footer checksum .* is wrong/.test(m)), checksum.join('\n'));
});

/** The present blocks of a disk whose file segments read sparse sources, from their SEEK_DATA maps. */
async function presentOf(disk: DiskImage, blockSize: Bytes): Promise<PresentBlocks> {
  const maps = new Map<string, DataMap>();
  for (const s of disk.layout.segments) {
    if (s.kind !== 'file' || maps.has(s.source.path)) continue;
    const st = await stat(s.source.path);
    maps.set(s.source.path, sourceData(s.source.path, { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs }).map);
  }
  return presentBlocks(disk.layout, blockSize, (s) => maps.get(s.path));
}

/** Writes the dynamic VHDX and VHD of a disk and checks them against its raw bytes. */
async function dynamicContainersMatch(t: ExecutionContext, disk: DiskImage, dir: string): Promise<{ raw: string; vhdx: string; vhd?: string }> {
  const raw = join(dir, 'disk.raw');
  const vhdx = join(dir, 'x.vhdx');
  await writeLayout(disk.layout, raw);
  const px = await presentOf(disk, DYNAMIC_VHDX_BLOCK_SIZE);
  const lx = dynamicVhdxLayout(disk, px);
  t.is(lx.size, dynamicVhdxSize(disk.layout.size, disk.sectorSize, px.count));
  await writeLayout(lx, vhdx);
  t.deepEqual(await checkVhdx(vhdx), []);
  t.regex(await run('vhdiinfo', [vhdx]), /Disk type\s*:\s*Dynamic/);
  if (disk.sectorSize === 4096) return { raw, vhdx };
  t.regex(await run('qemu-img', ['compare', '-f', 'raw', '-F', 'vhdx', raw, vhdx]), /Images are identical/);
  t.regex(await run('qemu-img', ['check', '-f', 'vhdx', vhdx]), /No errors were found/);
  const vhd = join(dir, 'x.vhd');
  const pv = await presentOf(disk, DYNAMIC_VHD_BLOCK_SIZE);
  const lv = dynamicVhdLayout(disk, pv);
  t.is(lv.size, dynamicVhdSize(disk.layout.size, pv.count));
  await writeLayout(lv, vhd);
  t.regex(await run('qemu-img', ['compare', '-f', 'raw', '-F', 'vpc', raw, vhd]), /Images are identical/);
  t.is(JSON.parse(await run('qemu-img', ['info', '-f', 'vpc', '--output=json', vhd]))['virtual-size'], disk.layout.size);
  t.deepEqual(await checkDynamicVhd(vhd), []);
  t.regex(await run('vhdiinfo', [vhd]), /Disk type\s*:\s*Dynamic/);
  t.true(await vhdimountEquals(vhd, raw), 'libvhdi reads the dynamic VHD as the disk');
  return { raw, vhdx, vhd };
}

test('dynamic VHDX and VHD store only the blocks with data and read as the disk (qemu-img, libvhdi)', async (t) => {
  const dir = await tempDir(t);
  const disk = await smallDisk(dir, 37 * MiB + 3 * 512, 512);
  const { raw, vhdx, vhd } = await dynamicContainersMatch(t, disk, dir);
  t.true(await vhdimountEquals(vhdx, raw), 'libvhdi reads the dynamic VHDX as the disk');
  // The sparse source leaves 1.25 of every 2 MiB as holes: some blocks are not stored.
  t.true((await stat(vhdx)).size < 3 * MiB + MiB + disk.layout.size, 'smaller than a fixed VHDX');
  t.true((await stat(vhd!)).size < disk.layout.size, 'smaller than the disk');
});

test('4096-byte-sector dynamic VHDX: libvhdi reads it with 4096-byte sectors and identical bytes', async (t) => {
  const dir = await tempDir(t);
  const disk = await smallDisk(dir, 40 * MiB, 4096);
  const { raw, vhdx } = await dynamicContainersMatch(t, disk, dir);
  t.regex(await run('vhdiinfo', [vhdx]), /Bytes per sector\s*:\s*4096 bytes/);
  t.true(await vhdimountEquals(vhdx, raw));
});

test('sparse 6 GiB disk: dynamic containers keep the markers around the 4 GiB boundary and store one block per marker', async (t) => {
  const dir = await tempDir(t, '/dev/shm');
  const size = 6 * GiB;
  const marker = (start: Bytes): Piece => ({ kind: 'bytes', start, data: randomBytes(512) });
  const pieces = [0, 4 * GiB - 32 * MiB, 4 * GiB - 512, 4 * GiB, 4 * GiB + 32 * MiB - 512, 4 * GiB + 32 * MiB, size - 512].map(marker);
  const disk: DiskImage = { layout: paint(size, pieces), sectorSize: 512, id: nameBasedId('six dynamic'), timestamp: new Date() };
  const { vhdx } = await dynamicContainersMatch(t, disk, dir);
  t.is((await presentOf(disk, DYNAMIC_VHDX_BLOCK_SIZE)).count, pieces.length);
  t.true((await stat(vhdx)).size < 16 * MiB);
});

test('the strict checker catches broken dynamic VHDX and VHD structures', async (t) => {
  const dir = await tempDir(t);
  const disk = await smallDisk(dir, 20 * MiB, 512);
  const px = await presentOf(disk, DYNAMIC_VHDX_BLOCK_SIZE);
  const pv = await presentOf(disk, DYNAMIC_VHD_BLOCK_SIZE);
  const broken = async (name: string, edit: (path: string) => Promise<void>): Promise<string[]> => {
    const path = join(dir, name);
    const vhdx = name.endsWith('.vhdx');
    await writeLayout(vhdx ? dynamicVhdxLayout(disk, px) : dynamicVhdLayout(disk, pv), path);
    t.deepEqual(await (vhdx ? checkVhdx(path) : checkDynamicVhd(path)), [], `${name} before the edit`);
    await edit(path);
    return vhdx ? checkVhdx(path) : checkDynamicVhd(path);
  };
  const batAt = 3 * MiB;
  const overlap = await broken('overlap.vhdx', (p) => patch(p, batAt, 16, (b) => b.copy(b, 8, 0, 8)));
  t.true(overlap.some((m) => /blocks \d+ and \d+ overlap/.test(m)), overlap.join('\n'));
  const outside = await broken('outside.vhdx', (p) => patch(p, batAt, 8, (b) => b.writeUInt32LE(b.readUInt32LE(4) + 1, 4)));
  t.true(outside.some((m) => /runs past the end of the file/.test(m)), outside.join('\n'));
  const copy = await broken('copy.vhd', (p) => patch(p, 24, 1, (b) => void (b[0]! ^= 1)));
  t.true(copy.some((m) => /footer copy at 0 differs/.test(m)), copy.join('\n'));
  const header = await broken('header.vhd', (p) => patch(p, 512 + 28, 1, (b) => void (b[0]! ^= 1)));
  t.true(header.some((m) => /dynamic header checksum is wrong/.test(m)), header.join('\n'));
  const misaligned = await broken('misaligned.vhd', (p) =>
    patch(p, 1536, 4 * 10, (b) => {
      const k = [...Array(10).keys()].find((i) => b.readUInt32BE(4 * i) !== 0xffffffff)!;
      b.writeUInt32BE(b.readUInt32BE(4 * k) - 1, 4 * k);
    }),
  );
  t.true(misaligned.some((m) => /is not on a 4 KiB boundary/.test(m)), misaligned.join('\n'));
});
