// The `synthvhd` commands (yargs): one subcommand per file in this folder. Only the module of
// the command being run is loaded: `build` then loads no FUSE, Samba or doctor code, which with
// cold caches costs more than the clone itself.
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { BuildArgs } from './build.js';
import type { DoctorArgs } from './doctor.js';
import { EXIT_RUNTIME, EXIT_USAGE, UsageError, errorText } from './errors.js';
import type { InspectArgs } from './inspect.js';
import type { ListArgs } from './list.js';
import type { SambaConfArgs } from './samba-conf.js';
import type { ServeArgs } from './serve.js';

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

/** Every subcommand: its yargs name, its one-line summary, and how to load it. */
const COMMANDS: readonly { readonly name: string; readonly describe: string; load(): Promise<Loaded> }[] = [
  {
    name: 'build <source>',
    describe: 'write the whole disk of one image backup as a real .vhd or .vhdx file (reflinked where possible)',
    load: async () => {
      const m = await import('./build.js');
      return { builder: m.buildCommand as (y: Argv) => Argv, run: (a) => m.runBuild(a as BuildArgs, log) };
    },
  },
  {
    name: 'inspect <path>',
    describe: 'show a .raw.mbr, or the disk an image folder or .raw makes (partitions, segments, warnings)',
    load: async () => {
      const m = await import('./inspect.js');
      return { builder: m.inspectCommand as (y: Argv) => Argv, run: (a) => m.runInspect(a as InspectArgs, out) };
    },
  },
  {
    name: 'list',
    describe: 'list every disk that serve would show for a storage',
    load: async () => {
      const m = await import('./list.js');
      return { builder: m.listCommand as (y: Argv) => Argv, run: (a) => m.runList(a as ListArgs, out, log) };
    },
  },
  {
    name: 'serve',
    describe: 'mount a FUSE filesystem that shows a .vhd and .vhdx for every backup (as root; foreground; Ctrl-C unmounts)',
    load: async () => {
      const m = await import('./serve.js');
      return { builder: m.serveCommand as (y: Argv) => Argv, run: (a) => m.runServe(a as ServeArgs, log) };
    },
  },
  {
    name: 'doctor',
    describe: 'check FUSE, reflink support of the storage and cache, the Samba share, and who can read the storage and the disks; says what to fix',
    load: async () => {
      const m = await import('./doctor.js');
      return { builder: m.doctorCommand as (y: Argv) => Argv, run: (a) => m.runDoctor(a as DoctorArgs, out) };
    },
  },
  {
    name: 'samba-conf',
    describe: 'print an smb.conf share section for the mount',
    load: async () => {
      const m = await import('./samba-conf.js');
      return { builder: m.sambaConfCommand as (y: Argv) => Argv, run: (a) => m.runSambaConf(a as SambaConfArgs, out) };
    },
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
