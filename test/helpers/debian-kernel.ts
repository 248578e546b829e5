// Debian 12's own kernel: the linux-image-6.1.0-*-amd64 package that bookworm's
// linux-image-amd64 depends on, fetched with apt-get download and unpacked (vmlinuz and every
// module) into the test cache.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { cachedDir } from './debian-cache.js';
import { run } from './run.js';

export interface DebianKernel {
  /** `uname -r`, e.g. 6.1.0-57-amd64. */
  readonly release: string;
  readonly vmlinuz: string;
  /** lib/modules/<release> of the unpacked package. */
  readonly modules: string;
}

/** A field of an apt-cache show record (the control fields, which apt does not translate). */
function controlField(record: string, name: string): string {
  const m = new RegExp(`^${name}: (.*)$`, 'm').exec(record);
  if (!m) throw new Error(`apt-cache show: no ${name} field in\n${record}`);
  return m[1]!;
}

const aptShow = (pkg: string): Promise<string> => run('apt-cache', ['show', '--no-all-versions', pkg], { env: { ...process.env, LC_ALL: 'C' } });

export async function bookwormKernel(): Promise<DebianKernel> {
  const meta = controlField(await aptShow('linux-image-amd64'), 'Depends');
  const pkg = /linux-image-(6\.1\.0-\d+-amd64)\b/.exec(meta);
  if (!pkg) throw new Error(`linux-image-amd64 depends on no 6.1 kernel: ${meta}`);
  const release = pkg[1]!;
  const name = `linux-image-${release}`;
  const version = controlField(await aptShow(name), 'Version');
  const dir = await cachedDir('kernel', [name, version], async (d) => {
    await run('apt-get', ['download', `${name}=${version}`], { cwd: d });
    const deb = (await readdir(d)).find((f) => f.endsWith('.deb'));
    if (!deb) throw new Error(`apt-get download ${name}=${version} wrote no .deb into ${d}`);
    await run('dpkg-deb', ['-x', join(d, deb), join(d, 'root')]);
    await run('rm', [join(d, deb)]);
  });
  return { release, vmlinuz: join(dir, 'root/boot', `vmlinuz-${release}`), modules: join(dir, 'root/lib/modules', release) };
}
