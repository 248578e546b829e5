// SMB operations through Samba's own client library (python3-samba's libsmb Conn), as Windows
// issues them: test/helpers/smb-ops.py runs a list of them and reports each result or NTSTATUS
// code. That client has no port option: it reaches smbd on 127.0.0.1:445, inside `netns`.
import { spawnSync } from 'node:child_process';
import type { Netns } from './netns.js';
import { run } from './run.js';

/** Debian's Python 3, which has python3-samba (a pyenv python3 on PATH lacks Debian's modules). */
export const PYTHON = '/usr/bin/python3';
const SCRIPT = new URL('../../../test/helpers/smb-ops.py', import.meta.url).pathname;

/** MS-SMB2 2.2.13 / MS-DTYP 2.4.3 access masks, share access and create options. */
export const GENERIC_READ = 0x80000000;
export const GENERIC_WRITE = 0x40000000;
export const FILE_SHARE_READ = 0x1;
export const FILE_SHARE_WRITE = 0x2;
/** MS-SMB2 2.2.13 CreateDisposition. */
export const FILE_OPEN = 0x1;
export const FILE_CREATE = 0x2;
export const FILE_OVERWRITE_IF = 0x5;
export const FILE_NO_INTERMEDIATE_BUFFERING = 0x8;
export const FILE_NON_DIRECTORY_FILE = 0x40;

export type SmbOp =
  | { op: 'open'; conn: string; share: string; handle: string; path: string; access: number; share_access: number; disposition: number; options: number }
  | { op: 'write'; handle: string; offset: number; data: string }
  | { op: 'read'; handle: string; offset: number; length: number }
  | { op: 'close'; handle: string }
  | { op: 'list'; conn: string; share: string; dir: string }
  | { op: 'mkdir'; conn: string; share: string; path: string }
  | { op: 'unlink'; conn: string; share: string; path: string }
  | { op: 'rename'; conn: string; share: string; path: string; to: string };

export interface SmbEntry {
  readonly name: string;
  readonly attrib: number;
  readonly size: number;
}

/** One op's outcome: its value, the NTSTATUS code it failed with (unsigned), or the handle whose open had failed. */
export type SmbResult = { readonly ok: unknown } | { readonly ntstatus: number } | { readonly unopened: string };

/** Fails with a clear message when Debian's python3-samba is missing. */
export function requirePythonSamba(): void {
  const r = spawnSync(PYTHON, ['-c', 'import samba.samba3.libsmb_samba_internal, samba.samba3.param'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`the tests need ${PYTHON} with python3-samba: run 'bash scripts/setup-system.sh' (npm test does); ${r.stderr}${r.error ?? ''}`);
}

export interface SmbSession {
  readonly netns: Netns;
  /** The smb.conf the client library loads (the test's smbd's own). */
  readonly conf: string;
  readonly user: string;
  readonly password: string;
}

/** Runs `ops` in order in one client process; connections and handles live until it ends. */
export async function smbOps(s: SmbSession, ops: readonly SmbOp[]): Promise<SmbResult[]> {
  const [cmd, ...args] = s.netns.exec(PYTHON, [SCRIPT]);
  const out = await run(cmd!, args, { input: JSON.stringify({ host: '127.0.0.1', conf: s.conf, user: s.user, password: s.password, ops }) });
  const results = JSON.parse(out) as SmbResult[];
  if (results.length !== ops.length) throw new Error(`${SCRIPT}: ${results.length} results for ${ops.length} operations`);
  return results;
}
