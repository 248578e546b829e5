// The `synthvhd` commands (yargs): one subcommand per file in this folder. Only the module of
// the command being run is loaded: `build` then loads no FUSE, Samba or doctor code, which with
// cold caches costs more than the clone itself.
import { createRequire } from 'node:module';
import type { Argv, default as Yargs } from 'yargs';
import type { BuildArgs } from './build.js';
import type { DoctorArgs } from './doctor.js';
import { EXIT_RUNTIME, EXIT_USAGE, UsageError, errorText } from './errors.js';
import type { ExtractArgs } from './extract.js';
import type { InspectArgs } from './inspect.js';
import type { ListArgs } from './list.js';
import type { SambaConfArgs } from './samba-conf.js';
import type { ServeArgs } from './serve.js';

// yargs 17 through require: yargs 18 builds an Intl.Segmenter (ICU data) as it loads, a cost
// paid by every start (docs/performance.md §8); and yargs 17's ES module entry wraps --help by
// characters (cliui's ESM build has no wrap-ansi).
const require = createRequire(import.meta.url);
const yargs = require('yargs') as typeof Yargs;
const { hideBin } = require('yargs/helpers') as typeof import('yargs/helpers');

// `synthvhd list | head` closes the pipe early: that is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => process.exit(e.code === 'EPIPE' ? 0 : EXIT_RUNTIME));

const out = (s: string): void => void process.stdout.write(`${s}\n`);
const log = (s: string): void => void process.stderr.write(`${s}\n`);

// Read before yargs so every command's error path knows it, whatever its own option types.
const verbose = process.argv.includes('--verbose');

async function guarded(fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    log(`synthvhd: ${errorText(e)}`);
    if (verbose && e instanceof Error && e.stack) log(e.stack);
    process.exitCode = e instanceof UsageError ? EXIT_USAGE : EXIT_RUNTIME;
  }
}

/** A loaded subcommand: its options and what it does. */
interface Loaded {
  builder(y: Argv): Argv;
  run(a: unknown): Promise<void> | void;
}

/** A subcommand's module, loaded on use: its options (`builder`) and what it does (`run`). */
function lazy<M>(load: () => Promise<M>, builder: (m: M) => unknown, run: (m: M, a: never) => Promise<void> | void): () => Promise<Loaded> {
  return async () => {
    const m = await load();
    return { builder: builder(m) as (y: Argv) => Argv, run: (a) => run(m, a as never) };
  };
}

/** Every subcommand: its yargs name, its one-line summary, and how to load it. */
const COMMANDS: readonly { readonly name: string; readonly describe: string; load(): Promise<Loaded> }[] = [
  {
    name: 'build <source>',
    describe: 'write the whole disk of one image backup as a real .vhd or .vhdx file (reflinked where possible)',
    load: lazy(() => import('./build.js'), (m) => m.buildCommand, (m, a: BuildArgs) => m.runBuild(a, log)),
  },
  {
    name: 'extract <source> <path>',
    describe: 'copy a file or folder out of an image backup (times and hard links kept, reflinked where possible)',
    load: lazy(() => import('./extract.js'), (m) => m.extractCommand, (m, a: ExtractArgs) => m.runExtract(a, log)),
  },
  {
    name: 'inspect <path>',
    describe: 'show a .raw.mbr, or the disk an image folder or .raw makes (partitions, segments, warnings)',
    load: lazy(() => import('./inspect.js'), (m) => m.inspectCommand, (m, a: InspectArgs) => m.runInspect(a, out)),
  },
  {
    name: 'list',
    describe: 'list every disk that serve would show for a storage, with the filesystem each image holds',
    load: lazy(() => import('./list.js'), (m) => m.listCommand, (m, a: ListArgs) => m.runList(a, out, log)),
  },
  {
    name: 'serve',
    describe: 'mount a FUSE filesystem that shows a .vhd and .vhdx for every backup (as root; foreground; Ctrl-C unmounts)',
    load: lazy(() => import('./serve.js'), (m) => m.serveCommand, (m, a: ServeArgs) => m.runServe(a, log)),
  },
  {
    name: 'doctor',
    describe: 'check FUSE, reflink support of the storage and cache, the Samba share, and who can read the storage and the disks; says what to fix',
    load: lazy(() => import('./doctor.js'), (m) => m.doctorCommand, (m, a: DoctorArgs) => m.runDoctor(a, out)),
  },
  {
    name: 'samba-conf',
    describe: 'print an smb.conf share section for the mount',
    load: lazy(() => import('./samba-conf.js'), (m) => m.sambaConfCommand, (m, a: SambaConfArgs) => m.runSambaConf(a, out)),
  },
];

// The command is the first word that is not an option (the only global option, --verbose, takes no value).
const word = hideBin(process.argv).find((arg) => !arg.startsWith('-'));
const chosen = COMMANDS.find((c) => c.name.split(' ')[0] === word);
const loaded = chosen && (await chosen.load());

let cli = yargs(hideBin(process.argv))
  .scriptName('synthvhd')
  .usage('$0 <command> [options]\n\nVirtual VHD/VHDX disks from UrBackup raw image backups.')
  .option('verbose', { type: 'boolean', default: false, describe: 'more detail on errors' });
for (const c of COMMANDS) {
  // Only the chosen command's options are ever needed; the others are listed by name in --help.
  cli = cli.command(c.name, c.describe, c === chosen && loaded ? loaded.builder : (y: Argv) => y, (a) => guarded(async () => loaded!.run(a)));
}
await cli
  .demandCommand(1, 'name a command; see --help')
  .strict()
  .fail((msg, err, y) => {
    if (err) throw err;
    log(`synthvhd: ${msg}\n`);
    log(y.help() as unknown as string);
    process.exit(EXIT_USAGE);
  })
  .help()
  .version()
  .wrap(Math.min(110, process.stdout.columns || 100))
  .parseAsync();
