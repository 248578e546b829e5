import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from './run.js';

export type LoopFsType = 'btrfs' | 'xfs' | 'ext4';

export interface LoopFs {
  readonly type: LoopFsType;
  readonly mountpoint: string;
  readonly device: string;
  cleanup(): Promise<void>;
}

/**
 * A real filesystem of `type` on a sparse file attached to a loop device, mounted on a fresh
 * temporary folder. XFS gets reflink=1 so FICLONERANGE works as on a real UrBackup server.
 */
export async function makeLoopFs(type: LoopFsType, sizeMiB = 4096): Promise<LoopFs> {
  const dir = await mkdtemp(join(tmpdir(), `synthvhd-${type}-`));
  const img = join(dir, 'fs.img');
  const mountpoint = join(dir, 'mnt');
  await run('truncate', ['-s', `${sizeMiB}M`, img]);
  const mkfs: Record<LoopFsType, string[]> = {
    btrfs: ['mkfs.btrfs', '-q', '-f', img],
    xfs: ['mkfs.xfs', '-q', '-f', '-m', 'reflink=1', img],
    ext4: ['mkfs.ext4', '-q', '-F', img],
  };
  const [cmd, ...args] = mkfs[type];
  await run(cmd!, args);
  const device = (await run('losetup', ['--find', '--show', img])).trim();
  await run('mkdir', ['-p', mountpoint]);
  try {
    await run('mount', [device, mountpoint]);
  } catch (e) {
    await run('losetup', ['-d', device]).catch(() => undefined);
    throw e;
  }
  return {
    type,
    mountpoint,
    device,
    async cleanup() {
      await run('umount', ['-l', mountpoint]).catch(() => undefined);
      await run('losetup', ['-d', device]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
