// A machine boots read-write from a served disk (issue 23, docs/overlays.md): a UEFI/GPT machine
// imaged the UrBackup way (boot-linux.ts) is served, and QEMU boots each disk kind's file on the
// mount with OVMF, opened read-write, without -snapshot. GRUB on the ESP loads Debian's kernel and a
// busybox initramfs from that ESP, whose script, during boot, writes a file onto the ESP (vfat,
// mounted read-write) and a raw sector into C:, then reads both back from the disk (page cache
// dropped, the sector with O_DIRECT) and reports them on the serial console. After the VM exits,
// the served file has the bytes it had before the boot, for readers and for a new writer alike,
// and the storage is unchanged.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import test from 'ava';
import { CONTAINER_KINDS } from '../src/catalog/container-kind.js';
import { type LinuxBootMachine, linuxBootMachine } from './helpers/boot-linux.js';
import { DISK_KINDS, boot, killVms } from './helpers/boot-qemu.js';
import { bookwormKernel } from './helpers/debian-kernel.js';
import { busyboxInitramfsRunning } from './helpers/debian-vm.js';
import { type LoopFs, makeLoopFs } from './helpers/loopfs.js';
import { requireTool } from './helpers/run.js';
import { ServeTracker, eventually } from './helpers/serve-process.js';
import { guardStorage } from './helpers/storage-guard.js';
import { treeFingerprint } from './helpers/tree-hash.js';

/** The PCI transport and block driver of the disk, and vfat with the code pages its defaults name (Debian: codepage 437, iocharset ascii, utf8). */
const MODULES = ['virtio_pci', 'virtio_blk', 'vfat', 'nls_cp437', 'nls_ascii', 'nls_utf8'];
/** The machine's partitions as the guest names them (boot-linux.ts: ESP, MSR, C:). */
const ESP_DEVICE = '/dev/vda1';
const C_DEVICE = '/dev/vda3';
/** The sector of C: the guest overwrites: 1 MiB into the volume, inside the backup's NTFS. */
const C_SECTOR = 2048;
const ESP_FILE = 'synthvhd-rw.txt';
/** The serial console's last line: the script has reported, and powers off. */
const DONE = 'SYNTHVHD-RW done';
/** Markers the pristine disk does not hold. */
const ESP_MARKER = 'synthvhd read-write boot: the ESP file';
const RAW_MARKER = 'synthvhd read-write boot: the raw sector of C:';
/** GRUB loads the kernel and initramfs into memory below 4 GiB that OVMF has free; with 256 MiB it ran out. */
const VM_MEMORY_MIB = 1024;
/** Only a guard against a hung guest: OVMF, GRUB and the kernel end the run themselves. */
const VM_TIMEOUT_MS = 180_000;
/** How long a new writer may wait for the VM's overlay to go (FUSE sends RELEASE after close returns). */
const RELEASE_WAIT_MS = 10_000;

const tracker = new ServeTracker();
let fs: LoopFs | undefined;
let work: string | undefined;
let storage = '';
let before: Record<string, string> = {};
let machine: LinuxBootMachine;
let mount = '';

test.before(async () => {
  for (const tool of ['qemu-system-x86_64', 'busybox', 'cpio']) requireTool(tool);
  work = await mkdtemp(join(tmpdir(), 'synthvhd-boot-rw-'));
  fs = await makeLoopFs('btrfs', 1024);
  storage = join(fs.mountpoint, 'storage');
  await mkdir(storage);
  const kernel = await bookwormKernel();
  const initramfs = await busyboxInitramfsRunning(kernel, work, MODULES, bootScript());
  machine = await linuxBootMachine({ storage, kind: 'btrfs', workDir: work, kernel, initramfs });
  before = await treeFingerprint(storage);
  mount = await tracker.mountpoint(work, 'mnt');
  await tracker.serve(['--storage', storage, '--mount', mount, '--formats', CONTAINER_KINDS.join(','), '--overlay-dir', join(fs.mountpoint, 'overlays')]);
});

test.after.always(killVms);
guardStorage(() => ({ tracker, fs, work, storage, before }));

/** sha256 of a file and its length, read through a handle opened with `flags` ('r', or 'r+' for a writer's view). */
function hashFile(path: string, flags: 'r' | 'r+'): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let bytes = 0;
    createReadStream(path, { flags })
      .on('data', (d) => {
        h.update(d as Buffer);
        bytes += d.length;
      })
      .on('error', reject)
      .on('end', () => resolve(`${bytes} ${h.digest('hex')}`));
  });
}

/** The guest's boot: write both markers, drop what it cached, read them back from the disk, report, power off. */
function bootScript(): string {
  return `echo "SYNTHVHD-RW booted"
printf '%s' '${RAW_MARKER}' | dd of=${C_DEVICE} bs=512 seek=${C_SECTOR} conv=sync,fsync oflag=direct 2>/dev/null || echo "SYNTHVHD-RW raw write failed"
mkdir -p /esp
mount -t vfat ${ESP_DEVICE} /esp || echo "SYNTHVHD-RW cannot mount the ESP"
printf '%s' '${ESP_MARKER}' > /esp/${ESP_FILE} || echo "SYNTHVHD-RW esp write failed"
umount /esp
sync
echo 3 > /proc/sys/vm/drop_caches
blockdev --flushbufs /dev/vda
mount -t vfat -o ro ${ESP_DEVICE} /esp
echo "SYNTHVHD-RW esp read: [$(cat /esp/${ESP_FILE})]"
umount /esp
echo "SYNTHVHD-RW raw read: [$(dd if=${C_DEVICE} bs=512 skip=${C_SECTOR} count=1 iflag=direct 2>/dev/null | tr -d '\\000')]"
echo "${DONE}"
poweroff -f
`;
}

for (const kind of CONTAINER_KINDS) {
  test.serial(`a machine boots read-write from the served ${kind}, reads back what it wrote during boot, and leaves the disk pristine`, async (t) => {
    const { suffix, format } = DISK_KINDS[kind];
    const path = join(mount, machine.client, basename(machine.c.folder) + suffix);
    const pristine = await hashFile(path, 'r');
    const started = Date.now();
    const vm = await boot({ firmware: 'uefi', disk: { path, format }, readWrite: true, memMiB: VM_MEMORY_MIB, marker: DONE, timeoutMs: VM_TIMEOUT_MS, workDir: work! });
    t.log(`${kind}: ${((Date.now() - started) / 1000).toFixed(1)} s from start to the report`);
    const serial = `exit status ${vm.exitStatus}${vm.timedOut ? ' (timed out)' : ''}; serial console:\n${vm.serial.slice(-3000)}`;
    t.true(vm.markerSeen, serial);
    t.true(vm.serial.includes('SYNTHVHD-RW booted'), serial);
    t.true(vm.serial.includes(`SYNTHVHD-RW esp read: [${ESP_MARKER}]`), serial);
    t.true(vm.serial.includes(`SYNTHVHD-RW raw read: [${RAW_MARKER}]`), serial);
    t.is(await hashFile(path, 'r'), pristine, 'a reader sees the disk as it was before the boot');
    // The VM's overlay goes with its last handle; a new writer of the same user then starts from the pristine disk.
    t.true(await eventually(async () => (await hashFile(path, 'r+')) === pristine, RELEASE_WAIT_MS), 'a new writer sees the pristine disk');
  });
}
