// Runs the compiled `synthvhd` command as a child process, as a user would.
import { fileURLToPath } from 'node:url';
import { type RunResult, runToEnd } from './run.js';

/** dist/src/cli/main.cjs, resolved from dist/test/helpers/. */
export const CLI = fileURLToPath(new URL('../../src/cli/main.cjs', import.meta.url));

export type CliResult = RunResult;

/** `as`: run it as that user (with setpriv) instead of root, for permission cases. */
export function synthvhd(args: readonly string[], as?: { user: string; group: string }): Promise<CliResult> {
  const argv = [process.execPath, CLI, ...args];
  const [cmd, ...rest] = as ? ['setpriv', `--reuid=${as.user}`, `--regid=${as.group}`, '--clear-groups', ...argv] : argv;
  return runToEnd(cmd!, rest);
}
