// `synthvhd build SOURCE -o OUT.vhd|OUT.vhdx [--format KIND] [--reflink auto|always|never]`
import { extname, resolve } from 'node:path';
import type { Argv } from 'yargs';
import { DATABASE_OPTION } from './database-option.js';
import { containerLayout } from '../catalog/container-file.js';
import { CONTAINER_KINDS, type ContainerKind, bitmapNotes, isVhdKind, kindPresentBlocks, kindRefusal } from '../catalog/container-kind.js';
import { materialize, type ReflinkMode } from '../io/materialize.js';
import { UsageError } from './errors.js';
import { formatBytes as humanBytes } from '../base/units.js';
import { progressBar } from './progress-bar.js';
import { loadBackupDisk } from './source.js';

export interface BuildArgs {
  uniqueIds: boolean;
  urbackupDb?: string;
  source: string;
  output: string;
  format?: ContainerKind;
  reflink: ReflinkMode;
  partners: boolean;
}

export function buildCommand(y: Argv): Argv<BuildArgs> {
  return y
    .positional('source', { type: 'string', demandOption: true, describe: 'an image folder (<YYMMDD-HHMM>_Image_<letter>) or its .raw file' })
    .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'the disk file to write; .vhd is a fixed VHD, .vhdx a dynamic VHDX unless --format says otherwise' })
    .option('format', {
      choices: CONTAINER_KINDS,
      describe: 'vhd: fixed VHD; vhdx: dynamic VHDX (only the blocks that hold data); vhd-dynamic: dynamic VHD; vhdx-fixed: fixed VHDX. The output name must end in .vhd or .vhdx to match',
    })
    .option('reflink', {
      choices: ['auto', 'always', 'never'] as const,
      default: 'auto' as const,
      describe: 'clone partition data with FICLONERANGE (same btrfs/XFS/ZFS filesystem); auto copies where it cannot, always fails instead',
    })
    .option('partners', {
      type: 'boolean',
      default: true,
      describe: 'assemble the SYSVOL/ESP images that belong to this backup into the disk (--no-partners: the image alone)',
    })
    .option('unique-ids', {
      type: 'boolean',
      default: false,
      describe: 'give each disk its own MBR signature / GPT GUIDs (derived from client and backup) so several restore points can be attached at once; the original identity is needed to boot',
    })
    .option('urbackup-db', DATABASE_OPTION) as unknown as Argv<BuildArgs>;
}

export async function runBuild(a: BuildArgs, log: (s: string) => void): Promise<void> {
  const ext = extname(a.output).toLowerCase();
  if (ext !== '.vhd' && ext !== '.vhdx') throw new UsageError(`${a.output}: the output name must end in .vhd or .vhdx`);
  const format: ContainerKind = a.format ?? (ext === '.vhd' ? 'vhd' : 'vhdx');
  if (isVhdKind(format) !== (ext === '.vhd')) throw new UsageError(`${a.output}: a ${format} file must be named .${isVhdKind(format) ? 'vhd' : 'vhdx'}`);
  const warnings: string[] = [];
  const b = await loadBackupDisk(a.source, { partners: a.partners, uniqueIds: a.uniqueIds, warnings, ...(a.urbackupDb && { database: a.urbackupDb }) });
  for (const w of new Set(warnings)) log(`warning: ${w}`);
  if (b.images.length > 1) log(`assembling ${b.images.map((i) => i.folder).join(' + ')} (partners from the ${b.partnersFrom})`);
  const reason = kindRefusal(b, format);
  if (reason) throw new Error(`${a.output}: cannot write a .vhd: ${reason}; write a .vhdx instead`);
  const layout = containerLayout(b, format);
  const present = kindPresentBlocks(b, format);
  if (present) {
    for (const n of bitmapNotes(b)) log(`warning: ${n}`);
    log(`${present.count} of ${present.blocks.length} blocks of ${humanBytes(present.blockSize)} hold data`);
  }
  const bar = progressBar(`building ${b.folder} (${format})`);
  const out = resolve(a.output);
  const r = await materialize(layout, out, { reflink: a.reflink, onProgress: bar.update }).finally(bar.finish);
  log(
    `${out}: ${humanBytes(r.size)} ${format} written (${humanBytes(r.clonedBytes)} cloned, ${humanBytes(r.copiedBytes)} copied)` +
      (r.reason ? `; copied because ${r.reason}` : ''),
  );
}
