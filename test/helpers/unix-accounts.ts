// Unix groups and users made for one test run (unique names, removed at the end), and a probe
// that opens, reads and lists paths as one of them and reports errno codes, never message text.
import { randomBytes } from 'node:crypto';
import { run } from './run.js';

/** Groups and users of one run; remove() deletes all of them. */
export class TestAccounts {
  private readonly users: string[] = [];
  private readonly groups: string[] = [];
  private readonly tag = randomBytes(3).toString('hex');

  /** A new system group `svhd-<role>-<run>`. */
  async group(role: string): Promise<string> {
    const name = `svhd-${role}-${this.tag}`;
    await run('groupadd', ['--system', name]);
    this.groups.push(name);
    return name;
  }

  /** A new system user without home or shell, in `groups` besides its own. */
  async user(role: string, groups: readonly string[] = []): Promise<string> {
    const name = `svhd-${role}-${this.tag}`;
    await run('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', ...(groups.length ? ['--groups', groups.join(',')] : []), name]);
    this.users.push(name);
    return name;
  }

  async remove(): Promise<void> {
    for (const u of this.users.splice(0)) await run('userdel', [u]).catch(() => undefined);
    for (const g of this.groups.splice(0)) await run('groupdel', [g]).catch(() => undefined);
  }
}

export type ProbeOp = readonly [key: string, op: 'read' | 'open' | 'write' | 'list', path: string];

/**
 * sha256 of a read file, the sorted names of a listed folder, 'ok' for an open, and for a write
 * (an O_RDWR open that writes 4 KiB at 0 and reads them back) 'ok' or 'mismatch'; else the errno code.
 */
export type ProbeResult = Record<string, string | string[]>;

const PROBE = `
const fs = require('fs'), crypto = require('crypto');
const out = {};
for (const [key, op, path] of JSON.parse(process.argv[1])) {
  try {
    if (op === 'list') out[key] = fs.readdirSync(path).sort();
    else {
      const fd = fs.openSync(path, op === 'write' ? 'r+' : 'r');
      if (op === 'write') {
        const x = Buffer.alloc(4096, 0x78), back = Buffer.alloc(4096);
        fs.writeSync(fd, x, 0, x.length, 0);
        fs.readSync(fd, back, 0, back.length, 0);
        out[key] = back.equals(x) ? 'ok' : 'mismatch';
      } else if (op === 'read') {
        const h = crypto.createHash('sha256'), buf = Buffer.alloc(1 << 20);
        for (let pos = 0, n; (n = fs.readSync(fd, buf, 0, buf.length, pos)) > 0; pos += n) h.update(buf.subarray(0, n));
        out[key] = h.digest('hex');
      } else out[key] = 'ok';
      fs.closeSync(fd);
    }
  } catch (e) { out[key] = e.code; }
}
process.stdout.write(JSON.stringify(out));
`;

/** Runs `ops` as `user` with the user's own groups (runuser, like a login), or as root when user is undefined. */
export async function probe(user: string | undefined, ops: readonly ProbeOp[]): Promise<ProbeResult> {
  const argv = [process.execPath, '-e', PROBE, JSON.stringify(ops)];
  const out = user ? await run('runuser', ['-u', user, '--', ...argv]) : await run(argv[0]!, argv.slice(1));
  return JSON.parse(out) as ProbeResult;
}
