// Inode numbers of the mount (src/serve/namespace.ts): unique, never 0 or the root's, and the same
// for the same set of keys whatever order they come in, collisions of the hash included.
import test from 'ava';
import fc from 'fast-check';
import { InodeAllocator, ROOT_INO } from '../src/serve/namespace.js';

/** Two keys whose 31-bit hashes are equal, found by numbering keys until two meet (birthday bound: ~2^16 keys). */
function collidingPair(): [string, string] {
  const seen = new Map<number, string>();
  for (let i = 0; ; i++) {
    const key = `file:pc/${i}.vhdx`;
    const a = new InodeAllocator();
    a.add([key]);
    const ino = a.get(key);
    const other = seen.get(ino);
    if (other !== undefined) return [other, key];
    seen.set(ino, key);
  }
}

test('numbers are unique, not 0 or the root\'s, and follow the set of keys, not their order', (t) => {
  const [a, b] = collidingPair();
  fc.assert(
    fc.property(fc.uniqueArray(fc.string({ minLength: 1 }), { maxLength: 60 }), fc.boolean(), (keys, clash) => {
      const all = clash ? [...keys.filter((k) => k !== a && k !== b), a, b] : keys;
      const one = new InodeAllocator();
      one.add(all);
      const two = new InodeAllocator();
      two.add([...all].reverse());
      const numbers = all.map((k) => one.get(k));
      return new Set(numbers).size === all.length && numbers.every((n) => n !== 0 && n !== ROOT_INO && n < 2 ** 31) && all.every((k) => two.get(k) === one.get(k));
    }),
  );
  t.pass();
});

test('a key added later keeps the numbers given before and takes a free one', (t) => {
  const [a, b] = collidingPair();
  const inodes = new InodeAllocator();
  inodes.add([a]);
  const first = inodes.get(a);
  inodes.add([b, a]);
  t.is(inodes.get(a), first);
  t.not(inodes.get(b), first);
});
