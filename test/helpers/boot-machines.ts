// Two small bootable machines, imaged the UrBackup way (boot partition and C: as separate images):
// - UEFI/GPT: ESP (FAT32) with GRUB as \EFI\BOOT\BOOTX64.EFI, MSR, C: (NTFS) with the marker file;
// - BIOS/MBR: GRUB's boot.img in the MBR, its core.img in the 63 sectors after it (kept by UrBackup
//   as `.raw.mbr` extra data), a "System Reserved" NTFS boot partition holding GRUB's modules and
//   config (the SYSVOL image), and C: with the marker file.
// The disks are cached (boot-cache.ts), keyed by the GRUB images, the specs and this code.
import { copyFile, mkdtemp, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheKey, cachedFolder } from './boot-cache.js';
import { BOOT_DRIVE_CHECK, MARKER_FILE, MBR_CODE_BYTES, biosModuleFiles, grubImages, type GrubImages } from './boot-grub.js';
import { buildDisk, sha256, type BuiltDisk, type DiskSpec, type FileContent } from './disk-builder.js';
import { run } from './run.js';
import { writeImageBackup, type StorageKind, type WrittenImage } from './urbackup-storage.js';

export type Firmware = 'uefi' | 'bios';

export interface BootMachine {
  readonly firmware: Firmware;
  readonly client: string;
  readonly disk: BuiltDisk;
  /** The C: image; its partner (ESP or SYSVOL) is `partner`. */
  readonly c: WrittenImage;
  readonly partner: WrittenImage;
  /** What the boot loader prints when it found C:. */
  readonly marker: string;
}

export interface BootMachines {
  readonly uefi: BootMachine;
  readonly bios: BootMachine;
  /** A FAT drive whose BOOTX64.EFI exits QEMU with EXIT_FIRMWARE_FELL_THROUGH: the next boot device for UEFI runs. */
  readonly fallbackDrive: string;
}

const markerOf = (client: string): string => `synthvhd boot marker: found C: of ${client}`;

interface MachinePlan {
  readonly firmware: Firmware;
  readonly client: string;
  readonly spec: DiskSpec;
  /** BuiltPartition.index of the partner (ESP/SYSVOL) and of C:, their letters and backup times. */
  readonly partner: { letter: 'ESP' | 'SYSVOL'; index: number; time: string };
  readonly c: { index: number; time: string };
}

function plans(grub: GrubImages, modules: Record<string, Buffer>): MachinePlan[] {
  const cFiles = (client: string): Record<string, FileContent> => ({ [MARKER_FILE]: Buffer.from(`${markerOf(client)}\n`), 'Windows/System32/config/SYSTEM': 200_000 });
  const sysvolFiles = Object.fromEntries([['boot/grub/grub.cfg', grub.config], ...Object.entries(modules).map(([n, b]) => [`boot/grub/i386-pc/${n}`, b])]);
  return [
    {
      firmware: 'uefi',
      client: 'boot-uefi',
      spec: {
        table: 'gpt',
        sizeMiB: 123,
        partitions: [
          { type: 'esp', sizeMiB: 40, label: 'EFI system partition', files: { 'EFI/BOOT/BOOTX64.EFI': grub.efiLoader, 'EFI/BOOT/grub.cfg': grub.config } },
          { type: 'msr', sizeMiB: 16 },
          { type: 'ntfs', sizeMiB: 64, label: 'Windows', files: cFiles('boot-uefi') },
        ],
      },
      partner: { letter: 'ESP', index: 1, time: '240301-0955' },
      c: { index: 3, time: '240301-1000' },
    },
    {
      firmware: 'bios',
      client: 'boot-bios',
      spec: {
        table: 'mbr',
        sizeMiB: 100,
        partitions: [
          { type: 'ntfs', sizeMiB: 30, label: 'System Reserved', bootable: true, files: sysvolFiles },
          { type: 'ntfs', sizeMiB: 64, label: 'Windows', files: cFiles('boot-bios') },
        ],
      },
      partner: { letter: 'SYSVOL', index: 1, time: '240302-0855' },
      c: { index: 2, time: '240302-0900' },
    },
  ];
}

/** The spec as key input: file contents by hash (random-size contents are random anyway). */
function specKey(spec: DiskSpec): string {
  const files = (f: Readonly<Record<string, FileContent>> = {}): Record<string, string | number> =>
    Object.fromEntries(Object.entries(f).map(([p, c]) => [p, typeof c === 'number' ? c : sha256(c)]));
  return JSON.stringify({ ...spec, partitions: spec.partitions.map((p) => ({ ...p, files: files(p.files) })) });
}

/** The compiled code that makes the disks, so an edit to it makes new fixtures. */
async function builderCode(): Promise<Buffer[]> {
  return Promise.all(['./disk-builder.js', './boot-machines.js'].map((f) => readFile(fileURLToPath(new URL(f, import.meta.url)))));
}

/** grub-bios-setup's work for a core.img right after the MBR: boot code in, drive check off, core behind it. */
async function installBiosGrub(path: string, grub: GrubImages): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    const code = Buffer.from(grub.biosBoot.subarray(0, MBR_CODE_BYTES));
    code[BOOT_DRIVE_CHECK] = 0x90;
    code[BOOT_DRIVE_CHECK + 1] = 0x90;
    await fh.write(code, 0, code.length, 0);
    await fh.write(grub.biosCore, 0, grub.biosCore.length, 512);
  } finally {
    await fh.close();
  }
}

type DiskManifest = Omit<BuiltDisk, 'path' | 'cleanup'>;

/** The machine's disk from the cache (built there when missing), copied sparsely into `workDir`. */
async function machineDisk(plan: MachinePlan, grub: GrubImages, workDir: string): Promise<BuiltDisk> {
  const key = cacheKey([grub.key, specKey(plan.spec), ...(await builderCode())]);
  const cached = await cachedFolder(`disk-${plan.client}`, key, async (tmp) => {
    const disk = await buildDisk(plan.spec, tmp);
    if (plan.firmware === 'bios') await installBiosGrub(disk.path, grub);
    await rename(disk.path, join(tmp, 'disk.img'));
    await disk.cleanup();
    const { path: _p, cleanup: _c, ...manifest } = disk;
    await writeFile(join(tmp, 'manifest.json'), JSON.stringify(manifest));
  });
  const manifest = JSON.parse(await readFile(join(cached, 'manifest.json'), 'utf8')) as DiskManifest;
  const dir = await mkdtemp(join(workDir, `${plan.client}-`));
  const path = join(dir, 'disk.img');
  await run('cp', ['--sparse=always', join(cached, 'disk.img'), path]);
  return { ...manifest, path, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A FAT drive (no partition table: UEFI reads a "superfloppy" too) with the fallback loader. */
async function fallbackDrive(grub: GrubImages, workDir: string): Promise<string> {
  const cached = await cachedFolder('fallback-drive', cacheKey([grub.fallbackLoader]), async (tmp) => {
    const img = join(tmp, 'fallback.img');
    const efi = join(tmp, 'BOOTX64.EFI');
    await writeFile(efi, grub.fallbackLoader);
    await run('truncate', ['-s', '8M', img]);
    await run('mkfs.vfat', ['-n', 'FALLBACK', img]);
    const env = { ...process.env, MTOOLS_SKIP_CHECK: '1' };
    await run('mmd', ['-i', img, '::/EFI', '::/EFI/BOOT'], { env });
    await run('mcopy', ['-i', img, efi, '::/EFI/BOOT/BOOTX64.EFI'], { env });
    await rm(efi);
  });
  const out = join(workDir, 'fallback.img');
  await copyFile(join(cached, 'fallback.img'), out);
  return out;
}

/** Builds both machines and writes their images (partner first, 5 minutes before C:) into `storage`. */
export async function bootMachines(storage: string, kind: StorageKind, workDir: string): Promise<BootMachines> {
  const grub = await grubImages();
  const modules = await biosModuleFiles();
  const machines: Partial<Record<Firmware, BootMachine>> = {};
  for (const plan of plans(grub, modules)) {
    const disk = await machineDisk(plan, grub, workDir);
    const image = (letter: string, partition: number, time: string): Promise<WrittenImage> => writeImageBackup({ storage, client: plan.client, time, letter, disk, partition, kind });
    const partner = await image(plan.partner.letter, plan.partner.index, plan.partner.time);
    const c = await image('C', plan.c.index, plan.c.time);
    machines[plan.firmware] = { firmware: plan.firmware, client: plan.client, disk, c, partner, marker: markerOf(plan.client) };
  }
  return { uefi: machines.uefi!, bios: machines.bios!, fallbackDrive: await fallbackDrive(grub, workDir) };
}
