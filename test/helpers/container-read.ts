// Reads the disk inside a VHD/VHDX with readers independent of synthvhd: libvhdi (vhdimount),
// which reads zeros past the first 4 GiB chunk of a VHDX in its Debian 12 version, and QEMU.
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

/** The hex dump lines of `qemu-io -c 'read -v'`: offset, colon, up to 16 hex bytes, then text. */
const HEXDUMP_LINE = /^[0-9a-f]{8,}:((?: [0-9a-f]{2}){1,16})/;

/** `length` bytes at `offset` of the disk inside `container`, read by QEMU's driver for `format`. */
export async function qemuRead(container: string, format: 'vpc' | 'vhdx', offset: number, length: number): Promise<Buffer> {
  const out = await run('qemu-io', ['-r', '-f', format, '-c', `read -v ${offset} ${length}`, container]);
  const bytes = out.split('\n').flatMap((l) => HEXDUMP_LINE.exec(l.replace(/^([0-9a-f]{8,}:) /, '$1'))?.[1]!.trim().split(' ') ?? []);
  if (bytes.length !== length) throw new Error(`${container}: qemu-io read ${bytes.length} of ${length} bytes at ${offset}`);
  return Buffer.from(bytes.join(''), 'hex');
}
