// The FUSE wire encoders and decoders against the struct layouts of include/uapi/linux/fuse.h.
import test from 'ava';
import fc from 'fast-check';
import { constants } from 'node:fs';
import {
  attrReply, decodeInit, decodeRead, decodeRequest, direntsReply, entryReply, Init, initReply, IN_HEADER_SIZE, Op, openReply,
  OUT_HEADER_SIZE, type Request, statusReply,
} from '../src/fuse/protocol.js';

/** A request as the kernel writes it: fuse_in_header, then the body. */
function request(opcode: number, unique: bigint, nodeid: number, body: Buffer): Buffer {
  const b = Buffer.alloc(IN_HEADER_SIZE + body.length);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt32LE(opcode, 4);
  b.writeBigUInt64LE(unique, 8);
  b.writeBigUInt64LE(BigInt(nodeid), 16);
  body.copy(b, IN_HEADER_SIZE);
  return b;
}

const req = (unique = 0x1234_5678_9abc_def0n): Request => decodeRequest(request(Op.GETATTR, unique, 7, Buffer.alloc(16)), IN_HEADER_SIZE + 16);

test('a request header is decoded and its 64-bit unique echoed unchanged in the reply header', (t) => {
  const r = decodeRequest(request(Op.READ, 0xfedc_ba98_7654_3210n, 0x7fff_fffe, Buffer.alloc(40)), IN_HEADER_SIZE + 40);
  t.is(r.opcode, Op.READ);
  t.is(r.nodeid, 0x7fff_fffe);
  t.is(r.body.length, 40);
  const out = statusReply(r, 2);
  t.is(out.length, OUT_HEADER_SIZE);
  t.is(out.readUInt32LE(0), OUT_HEADER_SIZE);
  t.is(out.readInt32LE(4), -2);
  t.is(out.readBigUInt64LE(8), 0xfedc_ba98_7654_3210n);
  t.is(statusReply(r, 0).readInt32LE(4), 0);
});

test('a request whose length field disagrees with what was read is refused', (t) => {
  const b = request(Op.LOOKUP, 1n, 1, Buffer.from('name\0'));
  t.throws(() => decodeRequest(b, b.length - 1), { message: /says \d+ bytes, read \d+/ });
});

test('fuse_read_in: fh, offset and size', (t) => {
  const body = Buffer.alloc(40);
  body.writeBigUInt64LE(42n, 0);
  body.writeBigUInt64LE(5n * 2n ** 40n, 8);
  body.writeUInt32LE(1 << 20, 16);
  t.deepEqual(decodeRead(body), { fh: 42, offset: 5 * 2 ** 40, size: 1 << 20 });
});

test('fuse_entry_out and fuse_attr_out place the attributes where the kernel reads them', (t) => {
  const attr = { ino: 99, size: 3 * 2 ** 40 + 512, blocks: 6 * 2 ** 31 + 1, mtime: new Date(1_700_000_000_250), mode: constants.S_IFREG | 0o444, nlink: 1, uid: 5, gid: 6, blksize: 4096 };
  const e = entryReply(req(), attr, 1, 0.5);
  t.is(e.length, OUT_HEADER_SIZE + 128);
  const b = e.subarray(OUT_HEADER_SIZE);
  t.is(b.readBigUInt64LE(0), 99n, 'nodeid');
  t.is(b.readBigUInt64LE(16), 1n, 'entry_valid');
  t.is(b.readBigUInt64LE(24), 0n, 'attr_valid seconds');
  t.is(b.readUInt32LE(36), 500_000_000, 'attr_valid_nsec');
  const a = b.subarray(40);
  t.is(a.readBigUInt64LE(0), 99n, 'ino');
  t.is(a.readBigUInt64LE(8), BigInt(attr.size), 'size');
  t.is(a.readBigUInt64LE(16), BigInt(attr.blocks), 'blocks');
  t.is(a.readBigInt64LE(32), 1_700_000_000n, 'mtime');
  t.is(a.readUInt32LE(52), 250_000_000, 'mtimensec');
  t.is(a.readUInt32LE(60), attr.mode, 'mode');
  t.is(a.readUInt32LE(80), 4096, 'blksize');
  const r = attrReply(req(), attr, 1);
  t.is(r.length, OUT_HEADER_SIZE + 104);
  t.is(r.readBigUInt64LE(OUT_HEADER_SIZE + 16 + 8), BigInt(attr.size));
});

test('property: 64-bit attribute fields hold any safe size and inode number, and times before 1970', (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.integer({ min: 0, max: 2 ** 40 }), fc.integer({ min: -(2 ** 44), max: 2 ** 44 }), (ino, size, ms) => {
      const attr = { ino, size, blocks: size, mtime: new Date(ms), mode: constants.S_IFREG, nlink: 1, uid: 0, gid: 0, blksize: 4096 };
      const a = attrReply(req(), attr, 1).subarray(OUT_HEADER_SIZE + 16);
      const sec = Math.floor(ms / 1000);
      return a.readBigUInt64LE(0) === BigInt(ino) && a.readBigUInt64LE(8) === BigInt(size) && a.readBigInt64LE(32) === BigInt(sec) && a.readUInt32LE(52) === (ms - sec * 1000) * 1e6;
    }),
    { seed: 22, numRuns: 2000 },
  );
  t.pass();
});

test('fuse_open_out carries fh, open flags and the passthrough backing id', (t) => {
  const o = openReply(req(), 2 ** 40 + 3, 0x80, 7).subarray(OUT_HEADER_SIZE);
  t.is(o.length, 16);
  t.is(o.readBigUInt64LE(0), 2n ** 40n + 3n);
  t.is(o.readUInt32LE(8), 0x80);
  t.is(o.readInt32LE(12), 7);
});

test('INIT: flags above bit 31 travel in flags2 both ways', (t) => {
  const body = Buffer.alloc(64);
  body.writeUInt32LE(7, 0);
  body.writeUInt32LE(44, 4);
  body.writeUInt32LE(128 * 1024, 8);
  body.writeUInt32LE(Number(Init.ASYNC_READ | Init.INIT_EXT), 12);
  body.writeUInt32LE(Number(Init.PASSTHROUGH >> 32n), 16);
  const k = decodeInit(body);
  t.is(k.flags, Init.ASYNC_READ | Init.INIT_EXT | Init.PASSTHROUGH);
  const without = Buffer.from(body);
  without.writeUInt32LE(Number(Init.ASYNC_READ), 12);
  t.is(decodeInit(without).flags, Init.ASYNC_READ, 'flags2 is ignored without INIT_EXT');
  const out = initReply(req(), { maxReadahead: 131072, flags: k.flags, maxBackground: 32, congestionThreshold: 24, maxWrite: 4096, maxPages: 256, maxStackDepth: 1 }).subarray(OUT_HEADER_SIZE);
  t.is(out.length, 64);
  t.is(out.readUInt32LE(12), Number(Init.ASYNC_READ | Init.INIT_EXT));
  t.is(out.readUInt16LE(16), 32);
  t.is(out.readUInt16LE(28), 256);
  t.is(out.readUInt32LE(32), Number(Init.PASSTHROUGH >> 32n));
  t.is(out.readUInt32LE(36), 1);
});

test('READDIR: entries padded to 8 bytes, cut at the size asked, each offset resuming after it', (t) => {
  const entries = ['.', '..', 'client-with-a-long-name', 'é'].map((name, i) => ({ ino: i + 1, name, mode: i === 3 ? constants.S_IFREG : constants.S_IFDIR }));
  const all = direntsReply(req(), entries, 0, 4096).subarray(OUT_HEADER_SIZE);
  const parsed: { ino: number; off: number; name: string; type: number }[] = [];
  for (let at = 0; at < all.length; ) {
    const namelen = all.readUInt32LE(at + 16);
    parsed.push({ ino: Number(all.readBigUInt64LE(at)), off: Number(all.readBigUInt64LE(at + 8)), name: all.toString('utf8', at + 24, at + 24 + namelen), type: all.readUInt32LE(at + 20) });
    at += (24 + namelen + 7) & ~7;
  }
  t.deepEqual(parsed.map((p) => p.name), ['.', '..', 'client-with-a-long-name', 'é']);
  t.deepEqual(parsed.map((p) => p.off), [1, 2, 3, 4]);
  t.deepEqual(parsed.map((p) => p.type), [4, 4, 4, 8], 'DT_DIR, DT_REG');
  t.is(all.length % 8, 0);
  const firstTwo = direntsReply(req(), entries, 0, 64).subarray(OUT_HEADER_SIZE);
  t.is(firstTwo.length, 64, 'two 32-byte entries fit in 64 bytes, the third does not');
  t.is(direntsReply(req(), entries, 4, 4096).length, OUT_HEADER_SIZE, 'past the end: empty');
});
