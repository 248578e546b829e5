// The .raw.mbr parser against files written from docs/urbackup-raw-format.md, and against malformed ones.
import test from 'ava';
import { MbrFileError, parseMbrFile } from '../src/urbackup/mbr-file.js';
import { type MbrData, serializeMbrData, serializeWholeDiskMbr, sqliteVarint } from './helpers/mbr-writer.js';

const PATH = '/storage/c/230520-0143_Image_C/Image_C_230520-0143.raw.mbr';

function sector0(): Buffer {
  const b = Buffer.alloc(512);
  b.writeUInt32LE(0x5eed0b00, 440);
  b[446 + 4] = 0x07;
  b.writeUInt32LE(2048, 446 + 8);
  b.writeUInt32LE(204800, 446 + 12);
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

function gptHeader(lss: number): Buffer {
  const h = Buffer.alloc(lss);
  h.write('EFI PART', 0, 'latin1');
  h.writeUInt32LE(92, 12);
  return h;
}

const v0: MbrData = { deviceNumber: 2, partitionNumber: 1, serial: '1234', volumeName: 'System', fsName: 'NTFS', mbr: sector0(), errmsg: '' };
const v1 = (lss: 512 | 4096): MbrData => ({
  ...v0,
  partitionNumber: 3,
  gpt: {
    header: { pos: lss, data: gptHeader(lss) },
    table: { pos: 2 * lss, data: Buffer.alloc(16384, 1) },
    backupHeader: { pos: 1000 * lss, data: gptHeader(lss) },
    backupTable: { pos: 968 * lss, data: Buffer.alloc(16384, 2) },
  },
});

test('v0 MBR file: every field', (t) => {
  const m = parseMbrFile(serializeMbrData(v0), PATH);
  if (m.kind !== 'partition') return t.fail();
  t.is(m.version, 0);
  t.is(m.deviceNumber, 2);
  t.is(m.partitionNumber, 1);
  t.is(m.serial, '1234');
  t.is(m.volumeName, 'System');
  t.is(m.fsName, 'NTFS');
  t.is(m.sectorSize, 512);
  t.deepEqual(m.mbr, sector0());
  t.is(m.gpt, undefined);
  t.is(m.extra, undefined);
  t.deepEqual(m.warnings, []);
});

for (const lss of [512, 4096] as const) {
  test(`v1 GPT file with ${lss}-byte sectors: positions and data`, (t) => {
    const m = parseMbrFile(serializeMbrData(v1(lss)), PATH);
    if (m.kind !== 'partition' || !m.gpt) return t.fail();
    t.is(m.version, 1);
    t.is(m.sectorSize, lss);
    t.is(m.gpt.header.pos, lss);
    t.is(m.gpt.table.pos, 2 * lss);
    t.is(m.gpt.backupHeader.pos, 1000 * lss);
    t.is(m.gpt.backupTable.pos, 968 * lss);
    t.is(m.gpt.table.data.length, 16384);
    t.is(m.gpt.backupTable.data[0], 2);
  });
}

test('extra data (GRUB) with its varint position and length', (t) => {
  const extra = Buffer.alloc(32256, 0xab);
  const m = parseMbrFile(serializeMbrData({ ...v0, extra: { pos: 512, data: extra } }), PATH);
  if (m.kind !== 'partition') return t.fail();
  t.is(m.extra?.pos, 512);
  t.deepEqual(m.extra?.data, extra);
  // The varint examples of docs/urbackup-raw-format.md §3.1.
  t.deepEqual(sqliteVarint(512), Buffer.from([0x84, 0x00]));
  t.deepEqual(sqliteVarint(32256), Buffer.from([0x81, 0xfc, 0x00]));
});

test('errmsg becomes a warning', (t) => {
  const m = parseMbrFile(serializeMbrData({ ...v0, errmsg: 'dynamic volume' }), PATH);
  t.deepEqual(m.warnings, ['client reported: dynamic volume']);
});

test('whole-disk v100 file', (t) => {
  const m = parseMbrFile(serializeWholeDiskMbr(Buffer.from('PK\x03\x04zipdata')), PATH);
  t.is(m.kind, 'whole-disk');
  t.is(m.version, 100);
});

const good = serializeMbrData(v0);
const goodGpt = serializeMbrData(v1(512));
function patched(buf: Buffer, at: number, bytes: number[]): Buffer {
  const b = Buffer.from(buf);
  bytes.forEach((x, i) => (b[at + i] = x));
  return b;
}
const i32 = (n: number): number[] => [...Buffer.from(new Int32Array([n]).buffer)];
// Offsets in the v0 serialisation: status 0, version 1, device 2..5, partition 6..9, serial length 10.
const malformed: [string, Buffer, RegExp][] = [
  ['empty file', Buffer.alloc(0), /empty/],
  ['only the status byte', Buffer.from([1]), /version.*needs 1 bytes/],
  ['failure status', patched(good, 0, [0]), /status byte is 0/],
  ['unknown version', patched(good, 1, [7]), /unknown .raw.mbr version 7/],
  ['partition number 0', patched(good, 6, i32(0)), /partition_number is 0/],
  ['negative partition number', patched(good, 6, i32(-1)), /partition_number is -1/],
  ['truncated in device number', good.subarray(0, 4), /device_number.*truncated/],
  ['serial length past the end', patched(good, 10, i32(5000)), /serial_number.*needs 5000 bytes/],
  ['huge string length', patched(good, 10, [0xff, 0xff, 0xff, 0x7f]), /over the 10 MiB limit/],
  ['truncated in mbr_data', good.subarray(0, 100), /mbr_data.*truncated/],
  ['truncated before errmsg', good.subarray(0, good.length - 4), /errmsg/],
  ['mbr_data of the wrong length', serializeMbrData({ ...v0, mbr: Buffer.alloc(100) }), /mbr_data is 100 bytes/],
  ['GPT header position not a sector size', serializeMbrData({ ...v1(512), gpt: { ...v1(512).gpt!, header: { pos: 1024, data: gptHeader(512) } } }), /gpt_header_pos is 1024/],
  ['GPT header too short', serializeMbrData({ ...v1(512), gpt: { ...v1(512).gpt!, header: { pos: 512, data: Buffer.alloc(10) } } }), /gpt_header is 10 bytes/],
  ['GPT truncated in backup table', goodGpt.subarray(0, goodGpt.length - 100), /backup_gpt_table.*truncated|errmsg/],
  ['extra data length past the end', Buffer.concat([good, sqliteVarint(512), sqliteVarint(32256), Buffer.alloc(10)]), /extra_data.*needs 32256/],
  ['extra data varint cut off', Buffer.concat([good, Buffer.from([0x84])]), /extra_data_pos/],
];
for (const [name, buf, reason] of malformed) {
  test(`malformed: ${name} gives an error naming the file`, (t) => {
    const e = t.throws(() => parseMbrFile(buf, PATH), { instanceOf: MbrFileError });
    t.true(e!.message.startsWith(`${PATH}: `), e!.message);
    t.regex(e!.message, reason);
  });
}
