// A boot machine that runs a program at boot (issue 23's read-write boot): UEFI/GPT like the UEFI
// machine of boot-machines.ts, but the ESP's \EFI\BOOT\BOOTX64.EFI is a GRUB whose embedded config
// loads Debian's kernel and an initramfs from that same ESP; C: is NTFS. Imaged the UrBackup way,
// the ESP as C:'s partner, so a served C: boots with OVMF and runs the initramfs's script.
import { readFile } from 'node:fs/promises';
import { efiLoaderRunning } from './boot-grub.js';
import { buildDisk } from './disk-builder.js';
import type { DebianKernel } from './debian-kernel.js';
import { type StorageKind, type WrittenImage, writeImageBackup } from './urbackup-storage.js';

const KERNEL_FILE = 'synthvhd/vmlinuz';
const INITRD_FILE = 'synthvhd/initrd.cpio';
/** panic=-1: a failing init reboots at once, which QEMU's -no-reboot turns into its exit. */
const LINUX_CFG = `serial --unit=0 --speed=115200
terminal_output serial
linux /${KERNEL_FILE} console=ttyS0 panic=-1 loglevel=4
initrd /${INITRD_FILE}
boot
`;
const LOADER_MODULES = ['part_gpt', 'fat', 'linux', 'serial', 'terminal', 'boot'];

export interface LinuxBootMachine {
  readonly client: string;
  /** The C: image; its partner is the ESP. */
  readonly c: WrittenImage;
}

/** Builds the machine's disk in `workDir` and writes its ESP and C: images into `storage`. */
export async function linuxBootMachine(o: { storage: string; kind: StorageKind; workDir: string; kernel: DebianKernel; initramfs: string }): Promise<LinuxBootMachine> {
  const client = 'boot-linux';
  const loader = await efiLoaderRunning('linux', LINUX_CFG, LOADER_MODULES);
  const disk = await buildDisk(
    {
      table: 'gpt',
      sizeMiB: 123,
      partitions: [
        {
          type: 'esp',
          sizeMiB: 40,
          label: 'EFI system partition',
          files: { 'EFI/BOOT/BOOTX64.EFI': loader, [KERNEL_FILE]: await readFile(o.kernel.vmlinuz), [INITRD_FILE]: await readFile(o.initramfs) },
        },
        { type: 'msr', sizeMiB: 16 },
        { type: 'ntfs', sizeMiB: 64, label: 'Windows', files: { 'Windows/System32/config/SYSTEM': 200_000 } },
      ],
    },
    o.workDir,
  );
  const image = (letter: string, partition: number, time: string): Promise<WrittenImage> => writeImageBackup({ storage: o.storage, client, time, letter, disk, partition, kind: o.kind });
  await image('ESP', 1, '240303-0955');
  return { client, c: await image('C', 3, '240303-1000') };
}
