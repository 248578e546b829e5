// The opcode table of the FUSE session (src/fuse/handlers.ts): a request reaches its handler only
// when its body holds the struct that handler reads (docs/fuse-protocol.md §3).
import test from 'ava';
import { handlerOf } from '../src/fuse/handlers.js';
import {
  BATCH_FORGET_IN_SIZE, decodeRequest, GETATTR_IN_SIZE, IN_HEADER_SIZE, INIT_IN_SIZE, LSEEK_IN_SIZE, Op, OPEN_IN_SIZE, READ_IN_SIZE,
  RELEASE_IN_SIZE, type Request, WRITE_IN_SIZE,
} from '../src/fuse/protocol.js';

/** A decoded request of `opcode` with a zero body of `bodyLength` bytes. */
function request(opcode: number, bodyLength: number): Request {
  const b = Buffer.alloc(IN_HEADER_SIZE + bodyLength);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt32LE(opcode, 4);
  b.writeBigUInt64LE(1n, 8);
  b.writeBigUInt64LE(1n, 16);
  return decodeRequest(b, b.length);
}

const SIZES: readonly [string, number, number][] = [
  ['INIT', Op.INIT, INIT_IN_SIZE],
  ['GETATTR', Op.GETATTR, GETATTR_IN_SIZE],
  ['OPEN', Op.OPEN, OPEN_IN_SIZE],
  ['READ', Op.READ, READ_IN_SIZE],
  ['RELEASE', Op.RELEASE, RELEASE_IN_SIZE],
  ['READDIR', Op.READDIR, READ_IN_SIZE],
  ['READDIRPLUS', Op.READDIRPLUS, READ_IN_SIZE],
  ['RELEASEDIR', Op.RELEASEDIR, RELEASE_IN_SIZE],
  ['LSEEK', Op.LSEEK, LSEEK_IN_SIZE],
  ['BATCH_FORGET', Op.BATCH_FORGET, BATCH_FORGET_IN_SIZE],
];

for (const [name, op, size] of SIZES) {
  test(`${name}: a body one byte short of its struct is refused before the handler runs; a whole one reaches it`, (t) => {
    t.throws(() => handlerOf(request(op, size - 1)), { message: new RegExp(`^fuse_\\w+_in: ${size - 1} bytes, need ${size}$`) });
    t.is(handlerOf(request(op, size)).inSize, size);
  });
}

test('the table answers every opcode: one without a handler gets the same default handler as any other', (t) => {
  const flush = handlerOf(request(Op.FLUSH, 0));
  t.is(handlerOf(request(Op.ACCESS, 0)), flush);
  t.is(handlerOf(request(999, 0)), flush);
  t.not(handlerOf(request(Op.WRITE, WRITE_IN_SIZE)), flush, 'a write has a handler of its own (into a writer overlay), not the unknown one');
});
