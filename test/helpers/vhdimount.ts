// Reads a VHD/VHDX through libvhdi (vhdimount), a reader independent of QEMU and of synthvhd.
// libvhdi 20210425 reads zeros past the first 4 GiB chunk of a VHDX: use it for smaller disks.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './run.js';

/** Whether the disk inside `container` is byte for byte the raw disk `expected` (cmp's exit code). */
export async function vhdimountEquals(container: string, expected: string): Promise<boolean> {
  const mnt = await mkdtemp(join(tmpdir(), 'synthvhd-vhdi-'));
  try {
    await run('vhdimount', [container, mnt]);
    try {
      return await run('cmp', [join(mnt, 'vhdi1'), expected]).then(() => true, () => false);
    } finally {
      await run('fusermount', ['-u', mnt]);
    }
  } finally {
    await rm(mnt, { recursive: true, force: true });
  }
}
