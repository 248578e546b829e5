// Boots a disk in QEMU (TCG) with real firmware, Debian's OVMF (UEFI) or SeaBIOS (BIOS), and
// watches its serial console for a marker. The guest ends the run itself (GRUB's `halt`, or a
// write to QEMU's isa-debug-exit port); the timeout only guards against a hang.
import { type ChildProcess, spawn } from 'node:child_process';
import { access, copyFile, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DEBUG_EXIT_PORT } from './boot-grub.js';
import { FixtureError } from './disk-builder.js';
import { requireTool } from './run.js';
import type { ContainerKind } from '../../src/catalog/container-kind.js';
import type { Firmware } from './boot-machines.js';

/** Debian's ovmf: the 4 MiB build's code (read-only pflash) and its variable store template (a copy per VM). */
const OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd';
const OVMF_VARS = '/usr/share/OVMF/OVMF_VARS_4M.fd';
/** Debian's seabios, the BIOS QEMU's pc machine uses by default; named so a missing package is a clear error. */
const SEABIOS = '/usr/share/seabios/bios-256k.bin';

/** A drive for QEMU: a file and the block driver that reads it (`vpc` is QEMU's name for VHD). */
export interface Drive {
  readonly path: string;
  readonly format: 'raw' | 'vpc' | 'vhdx';
}

/**
 * Every disk kind `serve --formats` offers: its file name's ending after the backup's folder (as
 * issue 12 names them) and QEMU's driver for it. A Record, so a new kind does not compile until it
 * has its line here.
 */
export const DISK_KINDS: Record<ContainerKind, { readonly suffix: string; readonly format: Drive['format'] }> = {
  vhd: { suffix: '.vhd', format: 'vpc' },
  vhdx: { suffix: '.vhdx', format: 'vhdx' },
  'vhd-dynamic': { suffix: '-dynamic.vhd', format: 'vpc' },
  'vhdx-fixed': { suffix: '-fixed.vhdx', format: 'vhdx' },
};

export interface BootRun {
  /** Everything the guest wrote to its first serial port. */
  readonly serial: string;
  readonly markerSeen: boolean;
  /** QEMU's exit status when the guest ended the run; null when the run was stopped (marker seen, or timeout). */
  readonly exitStatus: number | null;
  readonly timedOut: boolean;
}

export interface BootOptions {
  readonly firmware: Firmware;
  /** The disk under test: the first boot device. */
  readonly disk: Drive;
  /** Tried by the firmware when the disk does not boot. */
  readonly fallback?: Drive;
  /** Text that ends the run as soon as it appears on the serial console. */
  readonly marker: string;
  readonly timeoutMs: number;
  /** Where the OVMF variable store copy goes (removed afterwards). */
  readonly workDir: string;
  /** QEMU opens the disk under test read-write (no -snapshot); default read-only. */
  readonly readWrite?: boolean;
  /** The guest's memory; default 256 MiB, enough for GRUB's payloads. */
  readonly memMiB?: number;
}

const running = new Set<ChildProcess>();

/** Kills every VM this process started that is still running (for a test file's teardown). */
export function killVms(): void {
  for (const p of running) p.kill('SIGKILL');
}

async function needFile(path: string, pkg: string): Promise<void> {
  await access(path).catch(() => {
    throw new FixtureError(`${path} is missing: run 'bash scripts/setup-system.sh' (Debian package ${pkg})`);
  });
}

/** QEMU's option syntax doubles a comma inside a value. */
const optValue = (s: string): string => s.replaceAll(',', ',,');

function driveArgs(id: string, d: Drive, bootindex: number, readWrite = false): string[] {
  return ['-drive', `if=none,id=${id},file=${optValue(d.path)},format=${d.format},readonly=${readWrite ? 'off' : 'on'}`, '-device', `virtio-blk-pci,drive=${id},bootindex=${bootindex}`];
}

async function firmwareArgs(firmware: Firmware, dir: string): Promise<string[]> {
  if (firmware === 'bios') {
    await needFile(SEABIOS, 'seabios');
    return ['-bios', SEABIOS];
  }
  await needFile(OVMF_CODE, 'ovmf');
  await needFile(OVMF_VARS, 'ovmf');
  const vars = join(dir, 'OVMF_VARS.fd');
  await copyFile(OVMF_VARS, vars);
  return ['-drive', `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`, '-drive', `if=pflash,format=raw,unit=1,file=${optValue(vars)}`];
}

/** Boots `disk` and resolves when the marker appeared, the guest ended QEMU, or the timeout passed. */
export async function boot(o: BootOptions): Promise<BootRun> {
  requireTool('qemu-system-x86_64');
  const dir = await mkdtemp(join(o.workDir, `vm-${o.firmware}-`));
  try {
    const args = [
      '-machine', 'pc,accel=tcg', '-m', String(o.memMiB ?? 256), '-nodefaults', '-no-user-config', '-display', 'none',
      '-monitor', 'none', '-serial', 'stdio', '-no-reboot',
      '-device', `isa-debug-exit,iobase=0x${DEBUG_EXIT_PORT.toString(16)},iosize=0x01`,
      ...(await firmwareArgs(o.firmware, dir)),
      ...driveArgs('disk', o.disk, 1, o.readWrite),
      ...(o.fallback ? driveArgs('fallback', o.fallback, 2) : []),
    ];
    const vm = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(vm);
    let serial = '';
    let stderr = '';
    return await new Promise<BootRun>((resolve, reject) => {
      let timedOut = false;
      let markerSeen = false;
      const timer = setTimeout(() => {
        timedOut = true;
        vm.kill('SIGKILL');
      }, o.timeoutMs);
      vm.stdout!.on('data', (d: Buffer) => {
        serial += d.toString('latin1');
        if (!markerSeen && serial.includes(o.marker)) {
          markerSeen = true;
          vm.kill('SIGKILL');
        }
      });
      vm.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      vm.on('error', reject);
      vm.on('close', (code) => {
        clearTimeout(timer);
        running.delete(vm);
        // QEMU exits 1 on its own errors (a drive it cannot open) before the guest ran: that is no boot result.
        if (!markerSeen && !timedOut && code === 1 && serial === '') reject(new Error(`qemu-system-x86_64 failed: ${stderr}`));
        else resolve({ serial, markerSeen, exitStatus: markerSeen || timedOut ? null : code, timedOut });
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
