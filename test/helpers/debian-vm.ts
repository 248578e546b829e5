// Boots a Debian tree under QEMU (TCG) with Debian's own kernel: a busybox initramfs loads the
// modules the root disk needs (virtio, ext4), mounts the tree's ext4 image from /dev/vda and
// hands over to a test script as PID 1 (or runs a script of its own), which reports on the serial console.
import { spawn } from 'node:child_process';
import { chmod, copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { DebianKernel } from './debian-kernel.js';
import { run } from './run.js';

/** What the initramfs loads: the PCI transport, the block driver, the root filesystem and the crc32c its checksums ask the crypto API for (which would otherwise need modprobe). */
const ROOT_MODULES = ['virtio_pci', 'virtio_blk', 'ext4', 'crc32c_generic'];

/** The `depends=` entry of a module's .modinfo section (comma-separated module names). */
export function modinfoDepends(ko: Buffer): string[] {
  const at = ko.indexOf('\0depends=');
  if (at < 0) return [];
  const end = ko.indexOf(0, at + 1);
  return ko.subarray(at + '\0depends='.length, end).toString('latin1').split(',').filter(Boolean);
}

/** Module files (relative to the modules folder) for `names` and all they depend on, dependencies first. */
export async function moduleClosure(modules: string, names: readonly string[]): Promise<string[]> {
  const byName = new Map<string, string>();
  for (const e of await readdir(join(modules, 'kernel'), { recursive: true, withFileTypes: true })) {
    if (e.isFile() && e.name.endsWith('.ko')) byName.set(e.name.slice(0, -3).replace(/-/g, '_'), relative(modules, join(e.parentPath, e.name)));
  }
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = async (name: string): Promise<void> => {
    const key = name.replace(/-/g, '_');
    if (seen.has(key)) return;
    seen.add(key);
    const file = byName.get(key);
    if (!file) throw new Error(`${modules}: no module ${name}`);
    for (const dep of modinfoDepends(await readFile(join(modules, file)))) await visit(dep);
    order.push(file);
  };
  for (const n of names) await visit(n);
  return order;
}

/**
 * A newc initramfs with a static busybox as /init: it mounts /proc, /sys and /dev, loads `modules`
 * (and all they depend on, dependencies first), waits for /dev/vda and runs `script` (sh).
 */
export async function busyboxInitramfsRunning(kernel: DebianKernel, work: string, modules: readonly string[], script: string): Promise<string> {
  const dir = join(work, 'initramfs');
  await mkdir(join(dir, 'bin'), { recursive: true });
  await copyFile('/bin/busybox', join(dir, 'bin/busybox'));
  const mods = await moduleClosure(kernel.modules, modules);
  for (const m of mods) {
    await mkdir(join(dir, 'modules', m, '..'), { recursive: true });
    await copyFile(join(kernel.modules, m), join(dir, 'modules', m));
  }
  await writeFile(join(dir, 'init'), `#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /newroot
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in ${mods.join(' ')}; do insmod /modules/$m || echo "SYNTHVHD-VM insmod $m failed"; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
${script}`);
  await chmod(join(dir, 'init'), 0o755);
  const out = join(work, 'initramfs.cpio');
  await run('sh', ['-c', `cd "${dir}" && find . | cpio --quiet -o -H newc -R 0:0 > "${out}"`]);
  return out;
}

/** A newc initramfs with a static busybox that mounts /dev/vda (ext4) and switch_roots to `init`. */
export function busyboxInitramfs(kernel: DebianKernel, work: string, init: string): Promise<string> {
  return busyboxInitramfsRunning(kernel, work, ROOT_MODULES, `mount -t ext4 /dev/vda /newroot || { echo "SYNTHVHD-VM cannot mount the root disk"; poweroff -f; }
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot ${init}
`);
}

/** An ext4 image of `tree` (mkfs.ext4 -d: no mount, no loop device), with room to spare. */
export async function ext4Image(tree: string, image: string, spareMiB: number): Promise<void> {
  const kib = Number((await run('du', ['-sk', '--apparent-size', tree])).split('\t')[0]);
  const mib = Math.ceil((kib * 1.2) / 1024) + spareMiB;
  await run('mkfs.ext4', ['-q', '-F', '-L', 'root', '-d', tree, image, `${mib}M`]);
}

export interface VmRun {
  /** Everything the guest wrote to the serial console. */
  readonly console: string;
  /** True when the guest did not power off within the timeout and was killed. */
  readonly timedOut: boolean;
}

/** Boots the kernel with the initramfs and the disks (virtio, raw; the first is the root) and waits for power-off. */
export function bootVm(o: { kernel: DebianKernel; initramfs: string; disks: readonly string[]; timeoutMs: number; memMiB?: number }): Promise<VmRun> {
  const args = [
    '-accel', 'tcg', '-m', String(o.memMiB ?? 2048), '-smp', '2',
    '-nodefaults', '-display', 'none', '-serial', 'stdio', '-no-reboot',
    '-kernel', o.kernel.vmlinuz, '-initrd', o.initramfs,
    // panic=-1: a failing init reboots at once, which -no-reboot turns into QEMU's exit.
    '-append', 'console=ttyS0 panic=-1 loglevel=4',
    ...o.disks.flatMap((d) => ['-drive', `file=${d},format=raw,if=virtio`]),
  ];
  return new Promise((resolve, reject) => {
    const p = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let timedOut = false;
    p.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
    p.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')));
    const timer = setTimeout(() => {
      timedOut = true;
      p.kill('SIGKILL');
    }, o.timeoutMs);
    p.on('error', reject);
    p.on('close', () => {
      clearTimeout(timer);
      resolve({ console: out, timedOut });
    });
  });
}
