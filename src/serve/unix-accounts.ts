// Unix groups and users by name, from NSS (getent(1), id(1)): numbers and colon-separated
// database lines only, never translated text; exit codes say "not found".
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** getent(1): "One or more supplied key could not be found in the database." */
const GETENT_NOT_FOUND = 2;

export interface UnixGroup {
  readonly name: string;
  readonly gid: number;
  /** Supplementary members (group(5)); users whose primary group it is are not listed here. */
  readonly members: readonly string[];
}

export interface UnixUser {
  readonly uid: number;
  /** Primary and supplementary groups, as the kernel gives them to the user's processes. */
  readonly gids: readonly number[];
}

/** The group `nameOrGid` (a name or a number), or undefined when NSS does not know it. */
export async function unixGroup(nameOrGid: string): Promise<UnixGroup | undefined> {
  let line: string;
  try {
    line = (await execFileP('getent', ['group', nameOrGid], { encoding: 'utf8' })).stdout.split('\n')[0]!;
  } catch (e) {
    if ((e as { code?: unknown }).code === GETENT_NOT_FOUND) return undefined;
    throw new Error(`getent group ${nameOrGid}: ${(e as Error).message}`);
  }
  // group(5): name:password:GID:user_list
  const [name = '', , gid = '', members = ''] = line.split(':');
  return { name, gid: Number(gid), members: members.split(',').filter(Boolean) };
}

/** The uid and groups of user `name` (id(1) -u / -G), or undefined when there is no such user. */
export async function unixUser(name: string): Promise<UnixUser | undefined> {
  const numbers = async (flag: string): Promise<number[] | undefined> =>
    execFileP('id', [flag, '--', name], { encoding: 'utf8' }).then(
      (r) => r.stdout.trim().split(/\s+/).map(Number),
      () => undefined,
    );
  const [uid, gids] = await Promise.all([numbers('-u'), numbers('-G')]);
  return uid && gids ? { uid: uid[0]!, gids } : undefined;
}
