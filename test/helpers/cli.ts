// Runs the compiled `synthvhd` command as a child process, as a user would.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** dist/src/cli/main.cjs, resolved from dist/test/helpers/. */
export const CLI = fileURLToPath(new URL('../../src/cli/main.cjs', import.meta.url));

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `as`: run it as that user (with setpriv) instead of root, for permission cases. */
export function synthvhd(args: readonly string[], as?: { user: string; group: string }): Promise<CliResult> {
  const argv = [process.execPath, CLI, ...args];
  const [cmd, ...rest] = as ? ['setpriv', `--reuid=${as.user}`, `--regid=${as.group}`, '--clear-groups', ...argv] : argv;
  return new Promise((resolve, reject) => {
    const p = spawn(cmd!, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
