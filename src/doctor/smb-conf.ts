// The active smb.conf as `testparm -s -v` prints it (a fixed format, never translated): what the
// share checks and the share-reader checks both read, in a file of its own so neither imports
// the other.
import { resolve } from 'node:path';

export type SmbConf = ReadonlyMap<string, ReadonlyMap<string, string>>;

/** The sections of `testparm -s [-v]` output: section name → key → value, as testparm spells them. */
export function parseTestparm(stdout: string): SmbConf {
  const out = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const line of stdout.split('\n')) {
    const section = /^\[(.+)\]\s*$/.exec(line);
    if (section) out.set(section[1]!, (current = new Map()));
    const kv = /^\s+([^=]+?)\s*=\s*(.*?)\s*$/.exec(line);
    if (kv && current) current.set(kv[1]!.toLowerCase(), kv[2]!);
  }
  return out;
}

const samePath = (a: string, b: string): boolean => resolve(a) === resolve(b);

/**
 * The shares whose path is `mount`. In `testparm -s -v` output a share lists only what differs
 * from the defaults printed under [global], so a setting's value is the share's, else global's.
 */
export function sharesAt(conf: SmbConf, mount: string): string[] {
  return [...conf].filter(([name, kv]) => name !== 'global' && kv.has('path') && samePath(kv.get('path')!, mount)).map(([name]) => name);
}
