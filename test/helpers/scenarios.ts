// Ready-made UrBackup storages: a real disk, its image backups and the disks a restore must give.
import { dirname, join } from 'node:path';
import { buildDisk, cloneDisk, updateFiles, type BuiltDisk, type DiskSpec } from './disk-builder.js';
import { writeExpectedDisk, writeExpectedWholeDisk, type ExpectedDisk } from './expected-disk.js';
import { partitionOf, writeImageBackup, type StorageKind, type WrittenImage } from './urbackup-storage.js';

export interface ScenarioContext {
  /** The storage folder (on a btrfs loop fs for kind 'btrfs', e.g. XFS for 'plain'). */
  readonly storage: string;
  /** Where disk images and expected disks go (not the storage). */
  readonly workDir: string;
  readonly kind: StorageKind;
}

export interface Scenario {
  readonly client: string;
  readonly disk: BuiltDisk;
  /** Image backups by letter. */
  readonly images: Readonly<Record<string, WrittenImage>>;
  /** Restored disks by the letters restored, main first: 'C', 'C+ESP'. */
  readonly expected: Readonly<Record<string, ExpectedDisk>>;
  /** path → sha256 of the files in each imaged partition, by BuiltPartition.index. */
  readonly files: Readonly<Record<number, Readonly<Record<string, string>>>>;
}

interface ImageStep {
  readonly letter: string;
  readonly time: string;
  readonly partition: number | 'whole-disk';
  readonly parentFolder?: string;
}

const windowsFiles = {
  'Windows/System32/config/SYSTEM': 300_000,
  'Windows/notepad.exe': 200_000,
  'Users/test/Documents/hello.txt': Buffer.from('hello from C:\r\n'),
  'big.bin': 3 * 1024 * 1024,
};

/** Images `steps` in order, then writes an expected disk per entry of `expected` (letters, main first). */
async function imageDisk(ctx: ScenarioContext, client: string, disk: BuiltDisk, steps: readonly ImageStep[], expected: Record<string, readonly string[]>): Promise<Scenario> {
  const images: Record<string, WrittenImage> = {};
  for (const s of steps) images[s.letter] = await writeImageBackup({ storage: ctx.storage, client, disk, kind: ctx.kind, ...s });
  const out: Record<string, ExpectedDisk> = {};
  for (const [name, letters] of Object.entries(expected)) {
    const path = join(dirname(disk.path), `expected-${name}.img`);
    const parts = letters.map((l) => images[l]!.partition);
    out[name] = parts[0] === 'whole-disk' ? await writeExpectedWholeDisk(disk, path) : await writeExpectedDisk(disk, parts as number[], path);
  }
  const files: Record<number, Record<string, string>> = {};
  for (const img of Object.values(images)) {
    if (img.partition !== 'whole-disk') files[img.partition] = { ...partitionOf(disk, img.partition).files };
  }
  return { client, disk, images, expected: out, files };
}

async function build(ctx: ScenarioContext, spec: DiskSpec): Promise<BuiltDisk> {
  return buildDisk(spec, ctx.workDir);
}

/** (1) GPT UEFI disk: ESP (FAT32), MSR, C: (NTFS), Recovery (NTFS); ESP imaged 5 minutes before C:. */
export async function uefiGpt(ctx: ScenarioContext): Promise<Scenario> {
  const disk = await build(ctx, {
    table: 'gpt',
    sizeMiB: 203,
    partitions: [
      { type: 'esp', sizeMiB: 100, label: 'EFI system partition', files: { 'EFI/Microsoft/Boot/bootmgfw.efi': 150_000, 'EFI/Boot/bootx64.efi': 120_000 } },
      { type: 'msr', sizeMiB: 16 },
      { type: 'ntfs', sizeMiB: 64, label: 'Windows', files: windowsFiles },
      { type: 'recovery', sizeMiB: 20, label: 'Recovery', files: { 'Recovery/WindowsRE/Winre.wim': 500_000 } },
    ],
  });
  return imageDisk(ctx, 'uefi-pc', disk, [
    { letter: 'ESP', time: '240101-1155', partition: 1 },
    { letter: 'C', time: '240101-1200', partition: 3 },
  ], { C: ['C'], 'C+ESP': ['C', 'ESP'] });
}

/** (2) BIOS MBR disk: bootable "System Reserved" NTFS + C: NTFS, imaged as SYSVOL and C:. */
export async function biosMbr(ctx: ScenarioContext): Promise<Scenario> {
  const disk = await build(ctx, {
    table: 'mbr',
    sizeMiB: 120,
    partitions: [
      { type: 'ntfs', sizeMiB: 50, label: 'System Reserved', bootable: true, files: { bootmgr: 100_000, 'Boot/BCD': 30_000 } },
      { type: 'ntfs', sizeMiB: 64, label: 'Windows', files: windowsFiles },
    ],
  });
  return imageDisk(ctx, 'bios-pc', disk, [
    { letter: 'SYSVOL', time: '240102-0855', partition: 1 },
    { letter: 'C', time: '240102-0900', partition: 2 },
  ], { C: ['C'], 'C+SYSVOL': ['C', 'SYSVOL'] });
}

/** (3) Legacy (XP-era) MBR disk: C: starts at sector 63, so nothing is 4 KiB aligned. */
export async function legacyMbr(ctx: ScenarioContext): Promise<Scenario> {
  const disk = await build(ctx, {
    table: 'mbr',
    sizeMiB: 72,
    partitions: [{ type: 'ntfs', sizeMiB: 64, startSector: 63, label: 'Windows', bootable: true, files: windowsFiles }],
  });
  return imageDisk(ctx, 'legacy-pc', disk, [{ letter: 'C', time: '240103-1000', partition: 1 }], { C: ['C'] });
}

/** (4) 4Kn GPT disk (4096-byte logical sectors: the `.mbr` has gpt_header_pos 4096). */
export async function gpt4Kn(ctx: ScenarioContext): Promise<Scenario> {
  const disk = await build(ctx, {
    table: 'gpt',
    sectorSize: 4096,
    sizeMiB: 72,
    partitions: [{ type: 'ntfs', sizeMiB: 64, label: 'Windows', files: windowsFiles }],
  });
  return imageDisk(ctx, 'pc-4kn', disk, [{ letter: 'C', time: '240104-1000', partition: 1 }], { C: ['C'] });
}

/** (5) MBR disk with GRUB in the MBR and stage 1.5 after it (v0 `.mbr` with extra data) and one ext4 partition, from a Linux client. */
export async function grubMbr(ctx: ScenarioContext): Promise<Scenario> {
  const disk = await build(ctx, {
    table: 'mbr',
    sizeMiB: 72,
    grubExtraData: true,
    partitions: [{ type: 'ext4', sizeMiB: 64, label: 'rootfs', bootable: true, files: { 'etc/hostname': Buffer.from('linux-grub\n'), 'boot/vmlinuz': 1_000_000 } }],
  });
  return imageDisk(ctx, 'linux-grub', disk, [{ letter: '_dev_sda1', time: '240105-1000', partition: 1 }], { _dev_sda1: ['_dev_sda1'] });
}

/** (6) Whole-disk image (`.mbr` v100): the `.raw` is the disk from byte 0 plus 512 KiB of zeros. */
export async function wholeDisk(ctx: ScenarioContext): Promise<Scenario> {
  const disk = await build(ctx, {
    table: 'mbr',
    sizeMiB: 72,
    partitions: [{ type: 'ntfs', sizeMiB: 64, label: 'Data', files: windowsFiles }],
  });
  return imageDisk(ctx, 'disk-image-pc', disk, [{ letter: 'C', time: '240106-1000', partition: 'whole-disk' }], { C: ['C'] });
}

/** The files (7) changes on C: after the first backup. */
export const changedFiles = {
  'Users/test/Documents/hello.txt': Buffer.from('changed after the full backup\r\n'),
  'new-after-full.bin': 700_000,
};

/**
 * (7) Scenario (1), then files on C: change (on a copy of the disk: `incremental.disk`) and C: is
 * imaged again as an incremental of the first C: image (btrfs snapshot or reflink copy).
 */
export async function uefiGptIncremental(ctx: ScenarioContext): Promise<{ base: Scenario; incremental: Scenario }> {
  const base = await uefiGpt(ctx);
  const disk = await updateFiles(await cloneDisk(base.disk, ctx.workDir), 3, changedFiles, ctx.workDir);
  const incremental = await imageDisk(ctx, base.client, disk, [{ letter: 'C', time: '240101-1300', partition: 3, parentFolder: base.images.C!.folder }], { 'C-incr': ['C'] });
  return { base, incremental };
}
