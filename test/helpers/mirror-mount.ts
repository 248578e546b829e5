// Mounting a test's FUSE mirror (slow-mirror, fuse-mirror) and ending it on SIGTERM.
import { execFileSync } from 'node:child_process';
import type { FuseFs } from '../../src/fuse/fuse-fs.js';
import { mountDevice } from '../../src/fuse/mount.js';
import { startSession } from '../../src/fuse/session.js';

/** Mounts `fs` at `mountpoint`, prints "ready", and unmounts and exits on SIGTERM. */
export function serveMirror(name: string, mountpoint: string, fs: FuseFs, timeoutSeconds: number): void {
  const session = startSession(mountDevice(mountpoint, true, true), fs, {
    maxRead: 1 << 20,
    maxReadahead: 1 << 20,
    workers: 2,
    maxBackground: 12,
    congestionThreshold: 9,
    entrySeconds: timeoutSeconds,
    attrSeconds: timeoutSeconds,
    log: (l) => process.stderr.write(`${name}: ${l}\n`),
  });
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => {
    try {
      execFileSync('umount', ['-l', mountpoint], { stdio: 'ignore' });
    } catch {
      // Already unmounted by the test.
    }
    // A lazy unmount leaves the connection up while readers hold files: ending the process ends it.
    void Promise.race([session.ended, new Promise((done) => setTimeout(done, 500))]).then(() => process.kill(process.pid, 'SIGKILL'));
  });
}
