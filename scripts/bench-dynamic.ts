// Benchmark section 7 (issue 12): what a copy of each kind of file costs, for the bench backup
// and the genuine 2.5.33 backups, and how the dynamic VHDX reads against the fixed one.
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { unpackRealFixture } from '../test/helpers/real-fixture.js';
import { run } from '../test/helpers/run.js';
import type { BenchFixture } from './bench-fixture.js';
import type { BenchResults, Series } from './bench-report.js';
import type { SambaServer } from './bench-samba.js';
import { CLI, type Served, dropCaches, fio } from './bench-system.js';

type Dynamic = NonNullable<BenchResults['dynamic']>;

interface ListedDisk {
  client: string;
  folder: string;
  images: { raw: string }[];
  files: { name: string; format: string; size: number }[];
}

/** Per disk of a storage: the bytes its `.raw` files hold (allocated) and each kind's file size. */
async function sizesOf(storage: string): Promise<Dynamic['sizes']> {
  const { disks } = JSON.parse(await run(process.execPath, [CLI, 'list', '--storage', storage, '--json'])) as { disks: ListedDisk[] };
  return Promise.all(
    disks.map(async (d) => {
      let dataBytes = 0;
      for (const i of d.images) dataBytes += (await stat(i.raw)).blocks * 512;
      const size = (format: string): number | null => d.files.find((f) => f.format === format)?.size ?? null;
      return { disk: `${d.client}/${d.folder}`, dataBytes, vhd: size('vhd'), vhdxFixed: size('vhdx-fixed'), vhdx: size('vhdx'), vhdDynamic: size('vhd-dynamic') };
    }),
  );
}

/**
 * Sizes for the bench storage and the genuine backups (unpacked into the scratch folder); cold
 * sequential reads through FUSE and Samba downloads of the bench backup's fixed and dynamic VHDX,
 * alternating, from a passthrough server showing both.
 */
export async function dynamicSection(fx: BenchFixture, served: Served, smb: SambaServer, share: string, runs: number, sideBySide: <T extends string>(items: readonly T[], runs: number, measure: (item: T) => Promise<number>) => Promise<Record<T, Series>>): Promise<Dynamic> {
  const genuine = join(fx.scratch, 'genuine');
  await mkdir(genuine, { recursive: true });
  await unpackRealFixture(genuine);
  const sizes = [...(await sizesOf(fx.storage)).filter((s) => s.disk.endsWith(fx.vhdPath.replace(/\.vhd$/, ''))), ...(await sizesOf(genuine))];
  const base = fx.vhdPath.replace(/\.vhd$/, '');
  const files = { fixed: `${base}-fixed.vhdx`, dynamic: `${base}.vhdx` } as const;
  const seqCold = await sideBySide(['fixed', 'dynamic'] as const, runs, async (k) => {
    dropCaches();
    const file = join(served.mountpoint, files[k]);
    return (await fio({ file, offset: 0, length: (await stat(file)).size, rw: 'read', blockSize: 1 << 20, jobs: 1 })).bytesPerSecond / 1e6;
  });
  const smbSeconds = await sideBySide(['fixed', 'dynamic'] as const, runs, (k) => (dropCaches(), smb.download(share, files[k])));
  return { sizes, seqCold, smbSeconds };
}
