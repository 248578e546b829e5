// `synthvhd extract SOURCE PATH -o DEST [--reflink auto|always|never]`: a file or folder out of an
// image backup's volume (issue 22.4, docs/browsing.md §4).
import { resolve } from 'node:path';
import type { Argv } from 'yargs';
import { extractNode, nodeAt } from '../io/extract-tree.js';
import type { ReflinkMode } from '../io/materialize.js';
import { openImageFiles } from '../serve/image-volume.js';
import { formatBytes } from '../base/units.js';
import { progressBar } from './progress-bar.js';
import { imageFolderOf } from './source.js';

export interface ExtractArgs {
  source: string;
  path: string;
  output: string;
  reflink: ReflinkMode;
}

export function extractCommand(y: Argv): Argv<ExtractArgs> {
  return y
    .positional('source', { type: 'string', demandOption: true, describe: 'an image folder (<YYMMDD-HHMM>_Image_<letter>) or its .raw file' })
    .positional('path', { type: 'string', demandOption: true, describe: 'a file or folder inside the volume, /-separated as the mount shows it (/ for everything)' })
    .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'where to write it (a folder must not exist yet)' })
    .option('reflink', {
      choices: ['auto', 'always', 'never'] as const,
      default: 'auto' as const,
      describe: 'clone the data with FICLONERANGE where it lies block-aligned in the .raw (same btrfs/XFS/ZFS filesystem); auto copies where it cannot, always fails instead',
    }) as unknown as Argv<ExtractArgs>;
}

export async function runExtract(a: ExtractArgs, log: (s: string) => void): Promise<void> {
  const folder = await imageFolderOf(a.source);
  const opened = await openImageFiles(folder.raw, folder.letter);
  if (opened.kind === 'unreadable') throw new Error(`${folder.raw}: cannot read its files: ${opened.fsName}: ${opened.why}`);
  try {
    const node = await nodeAt(opened.fs, a.path);
    const out = resolve(a.output);
    const bar = progressBar(`extracting ${a.path}`);
    const r = await extractNode(opened.fs, node, out, { reflink: a.reflink, onProgress: bar.update }).finally(bar.finish);
    log(`${out}: ${r.files} files, ${r.folders} folders, ${r.links} hard links, ${formatBytes(r.bytes)} (${formatBytes(r.clonedBytes)} cloned, ${formatBytes(r.copiedBytes)} copied)`);
  } finally {
    await opened.volume.close();
  }
}
