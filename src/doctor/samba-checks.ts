// Samba's side: smbd and testparm installed, and a share of the active smb.conf on the mount with
// the settings `synthvhd samba-conf` prints.
import { resolve } from 'node:path';
import { SHARE_SETTINGS } from '../samba/share-section.js';
import { type Finding, fail, ok, warn } from './finding.js';
import { runTool, whichTool } from './tools.js';
import { checkShareReaders } from './access-checks.js';
import { type SmbConf, parseTestparm, sharesAt } from './smb-conf.js';

/**
 * Settings of `share` that differ from SHARE_SETTINGS, as "key = actual (want wanted)". Over a
 * `serve --read-only` mount, where nothing can be written anyway, a read-only share is as good.
 */
export function shareDrift(conf: SmbConf, share: string, serveReadOnly: boolean): string[] {
  const kv = conf.get(share)!;
  const global = conf.get('global') ?? new Map<string, string>();
  const out: string[] = [];
  for (const [key, want] of SHARE_SETTINGS) {
    if (serveReadOnly && key === 'read only') continue;
    const actual = kv.get(key) ?? global.get(key);
    if (actual !== undefined && actual.toLowerCase() !== want.toLowerCase()) out.push(`${key} = ${actual} (want ${want || 'empty'})`);
  }
  return out;
}

export async function checkSambaTools(): Promise<Finding[]> {
  const out: Finding[] = [];
  for (const [tool, pkg] of [['smbd', 'samba'], ['testparm', 'samba-common-bin']] as const) {
    const path = await whichTool(tool);
    out.push(path ? ok(`${tool} found at ${path}`) : fail(`${tool} is not installed`, `apt-get install ${pkg}`));
  }
  return out;
}

/** Checks the smb.conf that testparm reads (`smbConf`, or Samba's default) for a share of `mount`. */
export async function checkShare(mount: string, smbConf: string | undefined, serveReadOnly: boolean): Promise<Finding[]> {
  const testparm = await whichTool('testparm');
  if (!testparm) return [];
  const r = await runTool(testparm, ['-s', '-v', ...(smbConf ? [smbConf] : [])]);
  const confName = smbConf ?? 'the default smb.conf';
  if (r.code !== 0) return [fail(`testparm rejects ${confName}: ${r.stderr.trim().split('\n').pop()}`, 'fix the smb.conf (testparm -s shows where)')];
  const conf = parseTestparm(r.stdout);
  const shares = sharesAt(conf, mount);
  if (shares.length === 0) {
    return [fail(`no share in ${confName} has path = ${mount}`, `add the output of 'synthvhd samba-conf --mount ${mount}' to it, then 'smbcontrol smbd reload-config'`)];
  }
  const settings = shares.map((share) => {
    const drift = shareDrift(conf, share, serveReadOnly);
    if (conf.get(share)!.get('guest ok')?.toLowerCase() === 'yes') return fail(`share [${share}] allows guests`, "set 'guest ok = no': backups are sensitive");
    return drift.length === 0
      ? ok(`share [${share}] in ${confName} exports ${mount} with the synthvhd settings`)
      : warn(`share [${share}] exports ${mount} but differs from 'synthvhd samba-conf': ${drift.join(', ')}`, "use the settings 'synthvhd samba-conf' prints (docs/vhd-vhdx.md §3.2 says why)");
  });
  return [...settings, ...(await checkShareReaders(conf, shares, mount, smbConf))];
}

/** Whether a synthvhd FUSE filesystem is mounted at `mount` right now (findmnt, util-linux). */
export async function checkMounted(mount: string): Promise<Finding> {
  const findmnt = await whichTool('findmnt');
  if (!findmnt) return warn(`cannot tell whether ${mount} is mounted: findmnt is missing`, 'apt-get install util-linux');
  const r = await runTool(findmnt, ['-n', '-o', 'FSTYPE', '--mountpoint', resolve(mount)]);
  const type = r.stdout.trim();
  if (r.code !== 0 || !type) return warn(`nothing is mounted at ${mount}`, `start the server: systemctl start synthvhd (or synthvhd serve --storage DIR --mount ${mount} --allow-other)`);
  return type.startsWith('fuse') ? ok(`a FUSE filesystem (${type}) is mounted at ${mount}`) : warn(`${mount} is a ${type} mount, not synthvhd's`, 'point --mount at an empty folder of its own');
}
