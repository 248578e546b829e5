// The `synthvhd` commands (yargs): one subcommand per file in this folder.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { type BuildArgs, buildCommand, runBuild } from './build.js';
import { type DoctorArgs, doctorCommand, runDoctor } from './doctor.js';
import { EXIT_RUNTIME, EXIT_USAGE, UsageError, errorText } from './errors.js';
import { type InspectArgs, inspectCommand, runInspect } from './inspect.js';
import { type ListArgs, listCommand, runList } from './list.js';
import { type SambaConfArgs, runSambaConf, sambaConfCommand } from './samba-conf.js';
import { type ServeArgs, runServe, serveCommand } from './serve.js';

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

await yargs(hideBin(process.argv))
  .scriptName('synthvhd')
  .usage('$0 <command> [options]\n\nVirtual VHD/VHDX disks from UrBackup raw image backups.')
  .option('verbose', { type: 'boolean', default: false, describe: 'more detail on errors' })
  .command<BuildArgs>(
    'build <source>',
    'write the whole disk of one image backup as a real .vhd or .vhdx file (reflinked where possible)',
    buildCommand,
    (a) => guarded(() => runBuild(a, log)),
  )
  .command<InspectArgs>(
    'inspect <path>',
    'show a .raw.mbr, or the disk an image folder or .raw makes (partitions, segments, warnings)',
    inspectCommand,
    (a) => guarded(() => runInspect(a, out)),
  )
  .command<ListArgs>(
    'list',
    'list every disk that serve would show for a storage',
    listCommand,
    (a) => guarded(() => runList(a, out, log)),
  )
  .command<ServeArgs>(
    'serve',
    'mount a FUSE filesystem that shows a .vhd and .vhdx for every backup (as root; foreground; Ctrl-C unmounts)',
    serveCommand,
    (a) => guarded(() => runServe(a, log)),
  )
  .command<DoctorArgs>(
    'doctor',
    'check FUSE, reflink support of the storage and cache, the Samba share, and who can read the storage and the disks; says what to fix',
    doctorCommand,
    (a) => guarded(() => runDoctor(a, out)),
  )
  .command<SambaConfArgs>('samba-conf', 'print an smb.conf share section for the mount', sambaConfCommand, (a) => guarded(async () => runSambaConf(a, out)))
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
