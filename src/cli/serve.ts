// `synthvhd serve --storage DIR --mount DIR [...]`: the FUSE filesystem, in the foreground.
import type { Argv } from 'yargs';
import { DATABASE_OPTION, databaseFor } from './database-option.js';
import { StorageCatalog } from '../catalog/storage-catalog.js';
import { CONTAINER_KINDS, type ContainerKind, DEFAULT_KINDS } from '../catalog/container-kind.js';
import { DEFAULT_SAFETY_SCAN_MS, type Server, serve } from '../serve/serve.js';
import { UsageError } from './errors.js';
import { parseByteSize } from './byte-size.js';
import { groupAccess } from '../serve/access.js';
import { unixGroup } from '../serve/unix-accounts.js';

export interface ServeArgs {
  uniqueIds: boolean;
  urbackupDb?: string;
  storage: string;
  mount: string;
  mode: 'passthrough' | 'reflink' | 'auto';
  cacheDir?: string;
  formats: string;
  allowOther: boolean;
  group?: string;
  showIncomplete: boolean;
  safetyScan: number;
  readOnly: boolean;
  dosAttributes: boolean;
  overlayDir?: string;
  overlayLimit?: string;
}

export function serveCommand(y: Argv): Argv<ServeArgs> {
  return y
    .option('storage', { type: 'string', demandOption: true, describe: 'the UrBackup storage folder (never written to)' })
    .option('mount', { type: 'string', demandOption: true, describe: 'where to mount the virtual tree <client>/<backup>.vhd|.vhdx' })
    .option('mode', {
      choices: ['passthrough', 'reflink', 'auto'] as const,
      default: 'auto' as const,
      describe: 'passthrough: read the .raw files directly; reflink: build a cloned disk file in --cache-dir on first open, which the kernel then reads itself (Linux 6.9+), and clone each file of 8 MiB or more inside a backup at its open the same way (a file with no name, gone at its last close); auto: reflink when --cache-dir can clone from the storage',
    })
    .option('cache-dir', { type: 'string', describe: 'folder for reflinked disk files and the unnamed clones of large files inside backups (same btrfs/XFS/ZFS filesystem as the storage)' })
    .option('formats', {
      type: 'string',
      default: DEFAULT_KINDS.join(','),
      describe: 'comma-separated kinds to show: vhd (fixed VHD, <backup>.vhd), vhdx (dynamic VHDX, <backup>.vhdx), vhd-dynamic (<backup>-dynamic.vhd), vhdx-fixed (<backup>-fixed.vhdx)',
    })
    .option('allow-other', { type: 'boolean', default: false, describe: 'let other users (smbd) reach the mount; each still reads only the disks whose .raw/.raw.mbr files they could read themselves (owner, group and mode are taken from them)' })
    .option('group', {
      type: 'string',
      describe: 'grant every disk to this unix group instead: disks root:GROUP 0660 (0440 with --read-only), folders root:GROUP 0550, whatever the storage allows (for a share of its own, see samba-conf --group)',
    })
    .option('show-incomplete', { type: 'boolean', default: false, describe: 'also show images without .raw.sync' })
    .option('unique-ids', {
      type: 'boolean',
      default: false,
      describe: 'give each disk its own MBR signature / GPT GUIDs (derived from client and backup) so several restore points can be attached at once; the original identity is needed to boot',
    })
    .option('safety-scan', {
      type: 'number',
      default: DEFAULT_SAFETY_SCAN_MS / 1000,
      describe: 'seconds between safety-net rescans (a stat per folder) behind the inotify watcher, which shows changes within seconds; storages where inotify sees nothing (NFS, CIFS, FUSE) are scanned every 2 s instead',
    })
    .option('read-only', {
      type: 'boolean',
      default: false,
      describe: 'refuse every open for writing (EROFS), as before overlays; by default a disk opened for writing (a read-write attach) takes the writes into a private overlay of its writer, thrown away at its last close: the storage is never written',
    })
    .option('dos-attributes', {
      type: 'boolean',
      default: false,
      describe: 'give the files inside image folders a user.DOSATTRIB extended attribute with the hidden, system, read-only and archive bits and the creation time NTFS stores, which Samba shows Windows (the shipped share stores DOS attributes); then every getxattr of every file reaches serve, and listings such as ls -l take several times longer',
    })
    .option('overlay-dir', {
      type: 'string',
      describe: 'folder (made 0700) for the writers\' overlays, kept as unlinked files that vanish with their last close or a crash (default: <cache-dir>/overlays, else /var/tmp/synthvhd-overlays)',
    })
    .option('overlay-limit', {
      type: 'string',
      describe: 'the most all overlays may take together, e.g. 20G; past it a write fails with ENOSPC (default: a quarter of --overlay-dir\'s free space at start). In reflink mode the kernel writes a writer\'s clone itself where this can take the disk\'s full size, counted at the open',
    })
    .option('urbackup-db', DATABASE_OPTION) as unknown as Argv<ServeArgs>;
}

export function parseFormats(s: string): ContainerKind[] {
  const list = s.split(',').map((f) => f.trim().toLowerCase()).filter(Boolean);
  const bad = list.filter((f) => !(CONTAINER_KINDS as readonly string[]).includes(f));
  if (bad.length || list.length === 0) throw new UsageError(`--formats: '${s}' is not a list of ${CONTAINER_KINDS.join(', ')}`);
  return [...new Set(list)] as ContainerKind[];
}

export async function runServe(a: ServeArgs, log: (s: string) => void): Promise<void> {
  if (a.mode === 'reflink' && !a.cacheDir) throw new UsageError('--mode reflink needs --cache-dir');
  if (!(a.safetyScan > 0)) throw new UsageError(`--safety-scan: '${a.safetyScan}' is not a positive number of seconds`);
  const group = a.group ? await unixGroup(a.group) : undefined;
  if (a.group !== undefined && !group) throw new UsageError(`--group ${a.group}: no such unix group (getent group ${a.group} finds none; create it with groupadd)`);
  const overlayLimit = a.overlayLimit === undefined ? undefined : parseByteSize('--overlay-limit', a.overlayLimit);
  if (a.readOnly && (a.overlayDir !== undefined || overlayLimit !== undefined)) throw new UsageError('--overlay-dir and --overlay-limit are for overlays, which --read-only turns off');
  const database = await databaseFor(a.storage, a.urbackupDb);
  if (database) log(`SYSVOL/ESP associations from ${database.path}`);
  const catalog = new StorageCatalog(a.storage, parseFormats(a.formats), { showIncomplete: a.showIncomplete, uniqueIds: a.uniqueIds, ...(database && { database }) });
  // Before the first scan: a stop while it runs (seconds, for a large storage) or just after the
  // mount must still unmount, not end the process with the mount left behind.
  const stop = stopOnSignals(log);
  log(`scanning ${a.storage}; the mount comes up once that is done`);
  const overlays = { readOnly: a.readOnly, ...(a.overlayDir !== undefined && { overlayDir: a.overlayDir }), ...(overlayLimit !== undefined && { overlayLimit }) };
  const access = group && groupAccess(group.gid, !a.readOnly);
  const server = await serve({ catalog, mount: a.mount, mode: a.mode, ...(a.cacheDir && { cacheDir: a.cacheDir }), allowOther: a.allowOther, ...(access && { access }), ...overlays, dosAttributes: a.dosAttributes, safetyScanMs: a.safetyScan * 1000, log });
  if (group) log(`every disk is readable${a.readOnly ? '' : ' (and writable into private overlays)'} by group ${group.name} (gid ${group.gid}) and root only`);
  stop.serving(server);
}

/** How long a stop may take: the unmount waits at most 1 s before it aborts the connection. */
const STOP_WAIT_MS = 10_000;

export interface SignalStop {
  /** The server to close on SIGINT/SIGTERM; closed at once if one came before it was up. */
  serving(server: Server): void;
}

/** SIGINT and SIGTERM (systemctl stop) unmount and exit 0, also when they come before the server is up. */
export function stopOnSignals(log: (s: string) => void): SignalStop {
  let server: Server | undefined;
  let asked: NodeJS.Signals | undefined;
  const close = (s: Server): void => {
    log(`${asked}: unmounting ${s.mountpoint}`);
    s.close().then(
      () => process.exit(0),
      (e: Error) => {
        log(`unmount failed: ${e.message}`);
        process.exit(1);
      },
    );
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
    asked = signal;
    // A stop must end the process: systemd would otherwise wait for its timeout and SIGKILL.
    setTimeout(() => {
      log(`${server ? 'unmount' : 'the first scan'} did not finish within ${STOP_WAIT_MS / 1000} s; exiting anyway`);
      process.exit(1);
    }, STOP_WAIT_MS).unref();
    if (server) close(server);
    else log(`${signal}: stopping once the first scan is done`);
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
  return {
    serving(s) {
      server = s;
      if (asked) close(s);
    },
  };
}
