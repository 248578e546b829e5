// `synthvhd list --storage DIR [--json]`: every disk, its partitions and the filesystem of each image
import type { Argv } from 'yargs';
import { DATABASE_OPTION, databaseFor } from './database-option.js';
import { ImageLoader } from '../catalog/image-loader.js';
import { scanDisks } from '../catalog/disk-scan.js';
import { diskJson } from './disk-json.js';
import { allDiskFileSystems, fileSystemLine } from './disk-filesystems.js';
import { formatBytes as humanBytes } from '../base/units.js';

export interface ListArgs {
  urbackupDb?: string;
  storage: string;
  json: boolean;
  showIncomplete: boolean;
}

export function listCommand(y: Argv): Argv<ListArgs> {
  return y
    .option('storage', { type: 'string', demandOption: true, describe: 'the UrBackup storage folder (holds one folder per client)' })
    .option('json', { type: 'boolean', default: false, describe: 'print JSON (its fields: docs/json-output.md in the synthvhd repository)' })
    .option('show-incomplete', { type: 'boolean', default: false, describe: 'include images without .raw.sync' })
    .option('urbackup-db', DATABASE_OPTION) as unknown as Argv<ListArgs>;
}

export async function runList(a: ListArgs, out: (s: string) => void, log: (s: string) => void): Promise<void> {
  const database = await databaseFor(a.storage, a.urbackupDb);
  const { disks, warnings } = await scanDisks(a.storage, new ImageLoader(), { showIncomplete: a.showIncomplete, ...(database && { database }) });
  const filesystems = await allDiskFileSystems(disks);
  if (a.json) {
    out(JSON.stringify({ storage: a.storage, disks: disks.map((d, i) => ({ ...diskJson(d), filesystems: filesystems[i] })), warnings }, null, 2));
    return;
  }
  for (const w of warnings) log(`warning: ${w}`);
  for (const [i, b] of disks.entries()) {
    const j = diskJson(b);
    out(`${b.client}/${b.folder}  ${j.table.toUpperCase()} ${humanBytes(j.diskSize)}  ${j.files.map((f) => f.name).join(' ')}`);
    if (j.images.length > 1) out(`  assembled from ${j.images.map((i) => i.folder).join(' + ')} (partners from the ${j.partnersFrom})`);
    for (const p of j.partitions) {
      out(`  #${p.number} ${humanBytes(p.length)} at ${p.start}  ${p.description}${p.imagedFrom ? `  ← ${p.imagedFrom}` : ''}`);
    }
    for (const f of filesystems[i]!) out(fileSystemLine(f));
    for (const w of j.warnings) out(`  warning: ${w}`);
  }
  if (disks.length === 0) log(`no complete image backups found in ${a.storage}`);
}
