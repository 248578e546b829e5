// Every way to write to a file or folder, each as the system call itself, so a test checks the
// errno it fails with (text like "Read-only file system" is translated on other locales).
// As a program, `node write-ops.js FILE DIR` prints the same as JSON (for trying as another user).
import { constants } from 'node:fs';
import { chmod, chown, link, open, rmdir, symlink, truncate, utimes } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');
const setxattr = libc.func('int setxattr(const char *path, const char *name, const void *value, size_t size, int flags)');
const removexattr = libc.func('int removexattr(const char *path, const char *name)');
const mknod = libc.func('int mknod(const char *path, uint32_t mode, uint64_t dev)');
const errnoNames = new Map<number, string>(Object.entries(koffi.os.errno).map(([name, n]) => [n, name]));

/** Runs a libc call; resolves its errno name, or 'ok'. */
function libcCall(f: () => number): string {
  return f() === 0 ? 'ok' : errnoNames.get(koffi.errno()) ?? `errno ${koffi.errno()}`;
}

async function nodeCall(f: () => Promise<unknown>): Promise<string> {
  try {
    await f();
    return 'ok';
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? String(e);
  }
}

/** Each write-like operation on `file` (in folder `dir`) and the errno name it ended with. */
export async function tryWrites(file: string, dir: string): Promise<Record<string, string>> {
  return {
    setxattr: libcCall(() => setxattr(file, 'user.x', Buffer.from('1'), 1, 0) as number),
    removexattr: libcCall(() => removexattr(file, 'user.x') as number),
    chmod: await nodeCall(() => chmod(file, 0o666)),
    chown: await nodeCall(() => chown(file, 65534, 65534)),
    link: await nodeCall(() => link(file, `${dir}/hard`)),
    symlink: await nodeCall(() => symlink(file, `${dir}/soft`)),
    mknod: libcCall(() => mknod(`${dir}/node`, constants.S_IFIFO | 0o644, 0) as number),
    utimes: await nodeCall(() => utimes(file, 978307200, 978307200)),
    'open for writing': await nodeCall(async () => (await open(file, 'r+')).close()),
    truncate: await nodeCall(() => truncate(file, 0)),
    create: await nodeCall(async () => (await open(`${dir}/new`, 'wx')).close()),
    rmdir: await nodeCall(() => rmdir(dir)),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.stdout.write(JSON.stringify(await tryWrites(process.argv[2]!, process.argv[3]!)));
}
