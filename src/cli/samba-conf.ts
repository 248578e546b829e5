// `synthvhd samba-conf --mount DIR [--share NAME] [--valid-users LIST] [--group NAME]`
import { resolve } from 'node:path';
import type { Argv } from 'yargs';
import { shareSection } from '../samba/share-section.js';

export interface SambaConfArgs {
  mount: string;
  share: string;
  validUsers?: string;
  group?: string;
}

export function sambaConfCommand(y: Argv): Argv<SambaConfArgs> {
  return y
    .option('mount', { type: 'string', demandOption: true, describe: 'the synthvhd mount point to share' })
    .option('share', { type: 'string', default: 'backups', describe: 'share name' })
    .option('valid-users', { type: 'string', describe: 'Samba "valid users" list (default: any authenticated user; never guests)' })
    .option('group', { type: 'string', describe: 'the --group of synthvhd serve: only its members may connect (valid users = @GROUP)' }) as unknown as Argv<SambaConfArgs>;
}

export function runSambaConf(a: SambaConfArgs, out: (s: string) => void): void {
  out(`# synthvhd share: add to /etc/samba/smb.conf, then: testparm -s && systemctl reload smbd`);
  out(shareSection({ name: a.share, path: resolve(a.mount), ...(a.validUsers && { validUsers: a.validUsers }), ...(a.group && { group: a.group }) }));
}
