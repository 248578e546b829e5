// A shared, writable memory map of a file on the mount, made by another process (python3's mmap):
// how a test tells that the kernel reads and writes a writer's view itself (docs/overlays.md §4).
import { run } from './run.js';

/**
 * Maps 4 KiB of `path` at `pos` shared and read-write (a new handle, opened O_RDWR), writes `put`
 * through the map when given, and resolves what the map holds then. The kernel maps a FUSE file
 * shared only through a passthrough handle (a direct I/O handle gives ENODEV): how a test tells
 * that the kernel itself writes the view.
 */
export async function sharedMap(path: string, pos: number, put?: Buffer): Promise<Buffer> {
  const py = [
    'import mmap, os, sys',
    'fd = os.open(sys.argv[1], os.O_RDWR)',
    'try:',
    '  m = mmap.mmap(fd, 4096, mmap.MAP_SHARED, offset=int(sys.argv[2]))',
    'except OSError as e:',
    '  sys.exit(__import__("errno").errorcode[e.errno])',
    'if sys.argv[3]: m[0:len(bytes.fromhex(sys.argv[3]))] = bytes.fromhex(sys.argv[3]); m.flush()',
    'sys.stdout.write(m[:].hex())',
  ].join('\n');
  return Buffer.from((await run('python3', ['-c', py, path, String(pos), put?.toString('hex') ?? ''])).trim(), 'hex');
}

