// Waits for reflink mode's built disks: a built disk's sidecar says it is complete
// (serve/disk-cache.ts), which is what a test or the benchmark needs before it measures or
// checks what the kernel reads from the built disk.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

const SIDECAR_SUFFIX = '.sources.json';
const POLL_MS = 100;

/** Resolves once `cacheDir` holds `count` complete built disks; rejects, naming the folder, after `timeoutMs`. */
export async function builtDisks(cacheDir: string, count: number, timeoutMs: number): Promise<void> {
  for (let waited = 0; waited < timeoutMs; waited += POLL_MS) {
    if ((await completeSidecars(cacheDir)) >= count) return;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  throw new Error(`${cacheDir}: fewer than ${count} disks built within ${timeoutMs / 1000} s`);
}

async function completeSidecars(cacheDir: string): Promise<number> {
  let n = 0;
  for (const name of await readdir(cacheDir).catch(() => [])) {
    if (!name.endsWith(SIDECAR_SUFFIX)) continue;
    const sidecar = JSON.parse(await readFile(join(cacheDir, name), 'utf8').catch(() => '{}')) as { complete?: boolean };
    if (sidecar.complete === true) n++;
  }
  return n;
}
