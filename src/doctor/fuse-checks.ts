// What `serve` needs from FUSE: the device, root, and a kernel with passthrough for full speed.
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { type Finding, fail, ok, warn } from './finding.js';

export async function checkFuseDevice(): Promise<Finding> {
  try {
    await access('/dev/fuse', constants.R_OK | constants.W_OK);
    return ok('/dev/fuse is present and usable');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT'
      ? fail('/dev/fuse is missing', 'load the module (modprobe fuse); in a container, pass --device /dev/fuse')
      : fail(`/dev/fuse is not usable (${code})`, 'run synthvhd serve as root, or give this user read/write access to /dev/fuse');
  }
}

/** serve mounts with mount(2) itself (no fusermount) and registers passthrough files: both need CAP_SYS_ADMIN. */
export function checkRoot(uid: number): Finding {
  return uid === 0
    ? ok('running as root: serve can mount /dev/fuse itself and let the kernel read built disks')
    : fail('not running as root: serve mounts with mount(2) and needs CAP_SYS_ADMIN', 'run synthvhd serve as root (the shipped systemd unit does)');
}

/** Linux 6.9 added FUSE passthrough (fs/fuse/passthrough.c): reads of a built disk then skip synthvhd. */
export function checkPassthrough(release: string): Finding {
  const [major = 0, minor = 0] = release.split('.').map((n) => parseInt(n, 10));
  return major > 6 || (major === 6 && minor >= 9)
    ? ok(`kernel ${release} has FUSE passthrough: disks built in reflink mode are read by the kernel directly`)
    : warn(`kernel ${release} predates FUSE passthrough (6.9): every read goes through synthvhd`, 'a newer kernel reads built disks (reflink mode) at the speed of the storage');
}
