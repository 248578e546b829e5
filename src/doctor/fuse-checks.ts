// What `serve` needs from FUSE: the device, a fusermount, and allow_other for smbd.
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { type Finding, fail, ok } from './finding.js';
import { whichTool } from './tools.js';

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

export async function checkFusermount(): Promise<Finding> {
  for (const name of ['fusermount', 'fusermount3']) {
    const path = await whichTool(name);
    if (path) return ok(`${name} found at ${path}`);
  }
  return fail('neither fusermount nor fusermount3 is installed', 'apt-get install fuse (or fuse3)');
}

/** smbd reads the mount as the connected user, so `serve --allow-other` must be allowed. */
export async function checkAllowOther(uid: number): Promise<Finding> {
  if (uid === 0) return ok('running as root: serve --allow-other needs no user_allow_other');
  const conf = await readFile('/etc/fuse.conf', 'utf8').catch(() => '');
  return /^\s*user_allow_other\s*$/m.test(conf)
    ? ok('/etc/fuse.conf has user_allow_other: serve --allow-other works without root')
    : fail("/etc/fuse.conf lacks 'user_allow_other', so smbd cannot read a mount made by this user", "add the line 'user_allow_other' to /etc/fuse.conf, or run serve as root");
}
