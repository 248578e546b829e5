// Boot tests: the disks `serve` shows boot like the machine they were imaged from. Two small
// machines (UEFI/GPT with an ESP, BIOS/MBR with GRUB after the MBR and a SYSVOL) are imaged the
// UrBackup way, the C: image and its partner separately; QEMU boots each disk kind straight from the
// FUSE mount, with OVMF and with SeaBIOS, and GRUB prints the marker file it finds on C: on the serial
// console. The same C: image built with `--no-partners` must not boot.
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import test from 'ava';
import { CONTAINER_KINDS } from '../src/catalog/container-kind.js';
import { synthvhd } from './helpers/cli.js';
import { EXIT_FIRMWARE_FELL_THROUGH, EXIT_NO_BOOT_PARTITION, debugExitStatus } from './helpers/boot-grub.js';
import { type BootMachine, type BootMachines, type Firmware, bootMachines } from './helpers/boot-machines.js';
import { type BootRun, DISK_KINDS, type Drive, boot, killVms } from './helpers/boot-qemu.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { ServeTracker } from './helpers/serve-process.js';
import { guardStorage } from './helpers/storage-guard.js';
import { treeFingerprint } from './helpers/tree-hash.js';

/**
 * Only a guard against a hung guest (e.g. MBR code that jumps into a zeroed gap): every expected run
 * ends itself (GRUB powers off, or exits QEMU). Under TCG on 2 busy cores SeaBIOS reached the marker
 * in about 1 s and OVMF in 7-11 s; the guards leave room for a much slower CI host.
 */
const VM_TIMEOUT_MS: Record<Firmware, number> = { bios: 60_000, uefi: 180_000 };

const tracker = new ServeTracker();
let fs: LoopFs | undefined;
let work: string | undefined;
let storage = '';
let before: Record<string, string> = {};
let machines: BootMachines;
let mount = '';

test.before(async () => {
  work = await mkdtemp(join(tmpdir(), 'synthvhd-boot-'));
  fs = await makeLoopFs('btrfs', 1024);
  storage = join(fs.mountpoint, 'storage');
  await mkdir(storage);
  machines = await bootMachines(storage, 'btrfs', work);
  before = await treeFingerprint(storage);
  mount = await tracker.mountpoint(work, 'mnt');
  await tracker.serve(['--storage', storage, '--mount', mount, '--formats', CONTAINER_KINDS.join(',')]);
});

test.after.always(killVms);
guardStorage(() => ({ tracker, fs, work, storage, before }));

/** The UEFI runs get the fallback drive, so a firmware that passes over the disk ends the run at once. */
function bootDisk(m: BootMachine, disk: Drive): Promise<BootRun> {
  const fallback: Drive | undefined = m.firmware === 'uefi' ? { path: machines.fallbackDrive, format: 'raw' } : undefined;
  return boot({ firmware: m.firmware, disk, fallback, marker: m.marker, timeoutMs: VM_TIMEOUT_MS[m.firmware], workDir: work! });
}

function describe(r: BootRun): string {
  return `exit status ${r.exitStatus}${r.timedOut ? ' (timed out)' : ''}; serial console:\n${r.serial.slice(-3000)}`;
}

const FIRMWARES: readonly Firmware[] = ['uefi', 'bios'];

for (const firmware of FIRMWARES) {
  for (const kind of CONTAINER_KINDS) {
    test.serial(`${firmware}: the served ${kind} boots and GRUB finds C:`, async (t) => {
      const m = machines[firmware];
      const { suffix, format } = DISK_KINDS[kind];
      const started = Date.now();
      const r = await bootDisk(m, { path: join(mount, m.client, basename(m.c.folder) + suffix), format });
      t.log(`${firmware} ${kind}: ${((Date.now() - started) / 1000).toFixed(1)} s to the marker`);
      t.true(r.markerSeen, describe(r));
    });
  }

  test.serial(`${firmware}: C: built with --no-partners does not boot`, async (t) => {
    const m = machines[firmware];
    const out = join(work!, `${m.client}-alone.vhdx`);
    const b = await synthvhd(['build', m.c.folder, '-o', out, '--no-partners']);
    t.is(b.code, 0, b.stderr);
    const r = await bootDisk(m, { path: out, format: 'vhdx' });
    t.false(r.markerSeen, describe(r));
    // UEFI: no ESP, so OVMF moves on to the fallback drive; BIOS: GRUB's core (kept with C:) runs but finds no boot partition.
    t.is(r.exitStatus, debugExitStatus(firmware === 'uefi' ? EXIT_FIRMWARE_FELL_THROUGH : EXIT_NO_BOOT_PARTITION), describe(r));
  });
}
