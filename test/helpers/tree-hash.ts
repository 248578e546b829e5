// A fingerprint of every file below a folder (content hash, size, mtime), to prove nothing wrote to it.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

async function fileHash(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export async function treeFingerprint(root: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const st = await lstat(p);
      if (st.isDirectory()) await walk(p);
      else out[p.slice(root.length)] = `${st.isFile() ? await fileHash(p) : 'special'} ${st.size} ${st.mtimeMs} ${st.mode}`;
    }
  };
  await walk(root);
  return out;
}
