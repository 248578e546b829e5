// `synthvhd doctor [--storage DIR] [--cache-dir DIR] [--mount DIR] [--smb-conf FILE]
// [--read-only | --overlay-dir DIR --overlay-limit SIZE]`: one line per finding.
import type { Argv } from 'yargs';
import { type Finding, formatFinding } from '../doctor/finding.js';
import { release } from 'node:os';
import { checkFuseDevice, checkPassthrough, checkRoot } from '../doctor/fuse-checks.js';
import { checkReflink } from '../doctor/reflink-check.js';
import { checkStorageOpen } from '../doctor/access-checks.js';
import { checkMounted, checkSambaTools, checkShare } from '../doctor/samba-checks.js';
import { checkOverlays } from '../doctor/overlay-check.js';
import { parseByteSize } from './byte-size.js';
import { EXIT_RUNTIME } from './errors.js';

/** The mount point of the shipped smb.conf and systemd unit. */
export const DEFAULT_MOUNT = '/srv/synthvhd';

export interface DoctorArgs {
  storage?: string;
  cacheDir?: string;
  mount: string;
  smbConf?: string;
  readOnly: boolean;
  overlayDir?: string;
  overlayLimit?: string;
}

export function doctorCommand(y: Argv): Argv<DoctorArgs> {
  return y
    .option('storage', { type: 'string', describe: 'the UrBackup storage folder (only read)' })
    .option('cache-dir', { type: 'string', describe: 'the --cache-dir of serve: tests a reflink clone into it' })
    .option('mount', { type: 'string', default: DEFAULT_MOUNT, describe: 'the mount point of serve, which a Samba share should export' })
    .option('smb-conf', { type: 'string', describe: "the smb.conf to check (default: Samba's own)" })
    .option('read-only', { type: 'boolean', default: false, describe: 'the --read-only of serve: no overlays to check' })
    .option('overlay-dir', { type: 'string', describe: 'the --overlay-dir of serve (default: as serve picks it)' })
    .option('overlay-limit', { type: 'string', describe: 'the --overlay-limit of serve (default: as serve computes it)' }) as unknown as Argv<DoctorArgs>;
}

export async function runDoctor(a: DoctorArgs, out: (s: string) => void): Promise<void> {
  const overlayLimit = a.overlayLimit === undefined ? undefined : parseByteSize('--overlay-limit', a.overlayLimit);
  const findings: Finding[] = [
    await checkFuseDevice(),
    checkRoot(process.getuid?.() ?? 0),
    checkPassthrough(release()),
    ...(await checkReflink(a.storage, a.cacheDir)),
    ...(await checkStorageOpen(a.storage)),
    ...(await checkOverlays({ readOnly: a.readOnly, storage: a.storage, cacheDir: a.cacheDir, overlayDir: a.overlayDir, overlayLimit })),
    ...(await checkSambaTools()),
    ...(await checkShare(a.mount, a.smbConf, a.readOnly)),
    await checkMounted(a.mount),
  ];
  for (const f of findings) out(formatFinding(f));
  if (findings.some((f) => f.level === 'fail')) process.exitCode = EXIT_RUNTIME;
}
