// Inode numbers of the mount (src/serve/namespace.ts): unique, never 0 or the root's, and the same
// for the same set of keys whatever order they come in, collisions of the hash included.
import test from 'ava';
import fc from 'fast-check';
import type { VirtualFile } from '../src/catalog/virtual-file.js';
import { InodeAllocator, Namespace, ROOT_INO } from '../src/serve/namespace.js';

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

/** A disk file with the image folders it is made of (docs/browsing.md §1). */
function disk(dir: string, name: string, version: string, folders: readonly string[]): VirtualFile {
  const images = folders.map((folder) => ({ client: dir, folder, dir: `/s/${dir}/${folder}`, time: new Date(0), letter: 'C', raw: `/s/${dir}/${folder}/x.raw`, mbrPath: `/s/${dir}/${folder}/x.raw.mbr`, complete: true }));
  const access = { storage: [], client: [], disk: [] };
  return { dir, name, key: `${dir}/${name}`, version, mtime: new Date(0), sources: [], access, images, computeSize: () => 0, layout: () => ({ size: 0, segments: [] }) };
}

test('image folders: one per image beside the disks, a new number when the disk changes, gone with it', (t) => {
  const ns = new Namespace(new Date(0));
  const c = disk('pc', 'A_Image_C.vhdx', 'v1', ['A_Image_C', 'A_Image_SYSVOL']);
  const cVhd = { ...c, name: 'A_Image_C.vhd', key: 'pc/A_Image_C.vhd' };
  ns.update([c, cVhd]);
  const dir = ns.root.dirs.get('pc')!;
  t.deepEqual([...dir.images.keys()], ['A_Image_C', 'A_Image_SYSVOL']);
  const image = ns.child(dir.ino, 'A_Image_C');
  t.is(image?.kind, 'image');
  t.is(ns.node(image!.ino), image);
  const changed = ns.update([disk('pc', 'A_Image_C.vhdx', 'v2', ['A_Image_C'])]);
  const now = ns.child(ns.root.dirs.get('pc')!.ino, 'A_Image_C')!;
  t.not(now.ino, image!.ino);
  t.is(ns.node(image!.ino), undefined);
  t.deepEqual(changed.removedImages.map((i) => i.name).sort(), ['A_Image_C', 'A_Image_SYSVOL']);
  t.true(changed.stale.some((s) => s.name === 'A_Image_SYSVOL'));
  ns.update([]);
  t.is(ns.node(now.ino), undefined);
});
