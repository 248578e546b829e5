// Real GRUB 2 boot loaders from Debian's grub-pc-bin and grub-efi-amd64-bin, made with grub-mkimage,
// whose only payload is to prove the firmware reached C:: on the serial console they print the
// marker file they find on C: (`search --file`, `cat`) and power off. No kernel is involved.
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FixtureError } from './disk-builder.js';
import { cacheKey, cachedFolder } from './boot-cache.js';
import { requireTool, run } from './run.js';

const GRUB_LIB = '/usr/lib/grub';
const BIOS_PLATFORM = 'i386-pc';
const EFI_PLATFORM = 'x86_64-efi';

/** The file on C: whose content the boot loader prints. */
export const MARKER_FILE = 'synthvhd-boot-marker.txt';

/** QEMU's isa-debug-exit port: a byte V written there ends QEMU with exit status (V << 1) | 1. */
export const DEBUG_EXIT_PORT = 0xf4;
/** Written by the BIOS core image when it cannot start GRUB's normal mode from the boot partition. */
export const EXIT_NO_BOOT_PARTITION = 0x21;
/** Written by the fallback drive's loader: the UEFI firmware passed over the disk under test. */
export const EXIT_FIRMWARE_FELL_THROUGH = 0x22;
/** The exit status of QEMU after the guest wrote `code` to the debug-exit port. */
export const debugExitStatus = (code: number): number => (code << 1) | 1;

/**
 * GRUB's i386-pc boot.img (MBR code) ends before the disk signature (MBR layout: code 0..439);
 * its boot-drive check at 0x66 is a 2-byte jmp that grub-bios-setup replaces with two NOPs for hard
 * disks (grub-core/boot/i386/pc/boot.S `boot_drive_check`, util/setup.c).
 */
export const MBR_CODE_BYTES = 440;
export const BOOT_DRIVE_CHECK = 0x66;
/** UrBackup keeps the 63 sectors after the MBR as `.raw.mbr` extra data (urbackup-raw-format.md §3.2 row 19). */
export const MBR_GAP_BYTES = 63 * 512;

/**
 * The payload, read by normal mode from the boot partition (BIOS) or the ESP (UEFI): serial
 * terminal, find C: by the marker file, print it, power off.
 */
const PAYLOAD_CFG = `serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
insmod part_msdos
insmod part_gpt
insmod ntfs
if search --no-floppy --file --set=croot /${MARKER_FILE}; then
  cat ($croot)/${MARKER_FILE}
fi
halt
`;

/** Embedded in core.img (rescue parser): normal mode lives on the boot partition; without it, say so and stop. */
const BIOS_EARLY_CFG = `insmod normal
normal
outb 0x${DEBUG_EXIT_PORT.toString(16)} 0x${EXIT_NO_BOOT_PARTITION.toString(16)}
`;
/** The prefix names the boot partition (the SYSVOL, first MBR entry) as grub-install would. */
const BIOS_PREFIX = '(hd0,msdos1)/boot/grub';
/** Fits the 63-sector gap: the NTFS reader for the boot partition, and `outb` for the failure exit. */
const BIOS_CORE_MODULES = ['biosdisk', 'part_msdos', 'ntfs', 'iorw'];

/** BOOTX64.EFI carries every module the payload needs and reads grub.cfg from its own folder on the ESP. */
const EFI_PREFIX = '/EFI/BOOT';
const EFI_MODULES = ['part_gpt', 'part_msdos', 'fat', 'ntfs', 'normal', 'search', 'search_fs_file', 'cat', 'serial', 'terminal', 'halt'];
const FALLBACK_CFG = `outb 0x${DEBUG_EXIT_PORT.toString(16)} 0x${EXIT_FIRMWARE_FELL_THROUGH.toString(16)}\n`;

export interface GrubImages {
  /** Identifies the images (and the GRUB package they come from), for keys of fixtures built from them. */
  readonly key: string;
  /** grub.cfg of the payload. */
  readonly config: Buffer;
  /** boot.img: MBR boot code. */
  readonly biosBoot: Buffer;
  /** core.img, for the sectors right after the MBR. */
  readonly biosCore: Buffer;
  /** \EFI\BOOT\BOOTX64.EFI for the ESP. */
  readonly efiLoader: Buffer;
  /** \EFI\BOOT\BOOTX64.EFI of the fallback drive: exits QEMU with EXIT_FIRMWARE_FELL_THROUGH. */
  readonly fallbackLoader: Buffer;
}

function platformDir(platform: string): string {
  return join(GRUB_LIB, platform);
}

/** GRUB's module folder as grub-install copies it to `/boot/grub/i386-pc/`: name → bytes. */
export async function biosModuleFiles(): Promise<Record<string, Buffer>> {
  const dir = platformDir(BIOS_PLATFORM);
  const names = (await readdir(dir)).filter((n) => n.endsWith('.mod') || n.endsWith('.lst'));
  return Object.fromEntries(await Promise.all(names.map(async (n) => [n, await readFile(join(dir, n))] as const)));
}

async function mkimage(dir: string, out: string, platform: string, prefix: string, modules: readonly string[], early?: string): Promise<void> {
  const args = ['-O', platform, '-d', platformDir(platform), '-o', join(dir, out), '-p', prefix];
  if (early !== undefined) {
    await writeFile(join(dir, `${out}.cfg`), early);
    args.push('-c', join(dir, `${out}.cfg`));
  }
  await run('grub-mkimage', [...args, ...modules]);
}

async function packageFile(platform: string, name: string): Promise<Buffer> {
  return readFile(join(platformDir(platform), name)).catch(() => {
    throw new FixtureError(`${join(platformDir(platform), name)} is missing: run 'bash scripts/setup-system.sh' (grub-pc-bin, grub-efi-amd64-bin)`);
  });
}

/**
 * A \EFI\BOOT\BOOTX64.EFI with `modules` whose embedded `config` (GRUB's rescue parser: plain
 * commands, no normal mode) does the work; cached as `grub-<name>`, keyed by both and GRUB's files.
 */
export async function efiLoaderRunning(name: string, config: string, modules: readonly string[]): Promise<Buffer> {
  requireTool('grub-mkimage');
  const key = cacheKey([config, ...modules, '|', await packageFile(EFI_PLATFORM, 'kernel.img'), await packageFile(EFI_PLATFORM, 'moddep.lst')]);
  const dir = await cachedFolder(`grub-${name}`, key, (tmp) => mkimage(tmp, 'BOOTX64.EFI', EFI_PLATFORM, EFI_PREFIX, modules, config));
  return readFile(join(dir, 'BOOTX64.EFI'));
}

/** Makes (or takes from the cache) the GRUB images; the key covers GRUB's own files and every config. */
export async function grubImages(): Promise<GrubImages> {
  requireTool('grub-mkimage');
  const inputs: (string | Buffer)[] = [PAYLOAD_CFG, BIOS_EARLY_CFG, BIOS_PREFIX, EFI_PREFIX, FALLBACK_CFG, ...BIOS_CORE_MODULES, '|', ...EFI_MODULES];
  for (const platform of [BIOS_PLATFORM, EFI_PLATFORM]) inputs.push(await packageFile(platform, 'kernel.img'), await packageFile(platform, 'moddep.lst'));
  inputs.push(await packageFile(BIOS_PLATFORM, 'boot.img'));
  const key = cacheKey(inputs);
  const dir = await cachedFolder('grub', key, async (tmp) => {
    await mkimage(tmp, 'core.img', BIOS_PLATFORM, BIOS_PREFIX, BIOS_CORE_MODULES, BIOS_EARLY_CFG);
    await mkimage(tmp, 'BOOTX64.EFI', EFI_PLATFORM, EFI_PREFIX, EFI_MODULES);
    await mkimage(tmp, 'fallback.efi', EFI_PLATFORM, EFI_PREFIX, ['iorw'], FALLBACK_CFG);
  });
  const biosCore = await readFile(join(dir, 'core.img'));
  if (biosCore.length > MBR_GAP_BYTES) throw new FixtureError(`${join(dir, 'core.img')}: ${biosCore.length} bytes, more than the ${MBR_GAP_BYTES} after the MBR`);
  return {
    key,
    config: Buffer.from(PAYLOAD_CFG),
    biosBoot: await packageFile(BIOS_PLATFORM, 'boot.img'),
    biosCore,
    efiLoader: await readFile(join(dir, 'BOOTX64.EFI')),
    fallbackLoader: await readFile(join(dir, 'fallback.efi')),
  };
}
