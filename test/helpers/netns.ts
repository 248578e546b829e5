// A network namespace of one test file's own, with loopback up: a server in it may take a fixed
// port (smbd on 127.0.0.1:445, for clients without a port option) beside everything else on the
// machine. `ip netns exec` also gives each command a mount namespace that sees the host's mounts.
import { randomBytes } from 'node:crypto';
import { run } from './run.js';

export interface Netns {
  readonly name: string;
  /** argv that runs `cmd args` inside the namespace. */
  exec(cmd: string, args: readonly string[]): string[];
  /** Deletes the namespace (its processes must have ended); idempotent. */
  remove(): Promise<void>;
}

export async function makeNetns(prefix = 'synthvhd'): Promise<Netns> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`;
  await run('ip', ['netns', 'add', name]);
  let removed = false;
  const remove = async (): Promise<void> => {
    if (removed) return;
    removed = true;
    await run('ip', ['netns', 'delete', name]);
  };
  try {
    await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  } catch (e) {
    await remove();
    throw e;
  }
  return { name, exec: (cmd, args) => ['ip', 'netns', 'exec', name, cmd, ...args], remove };
}
