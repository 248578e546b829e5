// Finding and running the system tools the checks ask about.
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** Where `name` is on PATH (plus the sbin folders, which a non-root PATH often lacks), or undefined. */
export async function whichTool(name: string): Promise<string | undefined> {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs.filter(Boolean)) {
    const path = join(dir, name);
    if (await access(path, constants.X_OK).then(() => true, () => false)) return path;
  }
  return undefined;
}

export interface ToolResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a tool and returns its exit code and output, never throwing for a non-zero exit. */
export async function runTool(path: string, args: readonly string[]): Promise<ToolResult> {
  try {
    const { stdout, stderr } = await execFileP(path, [...args], { encoding: 'utf8', maxBuffer: 16 << 20 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string; message: string };
    return { code: typeof err.code === 'number' ? err.code : 127, stdout: err.stdout ?? '', stderr: err.stderr || err.message };
  }
}
