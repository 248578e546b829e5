#!/usr/bin/env node
// Entry point of `synthvhd`. CommonJS, and importing nothing statically, so it runs before
// anything starts libuv's thread pool (ES module loading reads files on it), which takes its size
// once: partition reads run on that pool, and 32 threads keep one stalled storage from holding up
// the reads of every other disk.
process.env.UV_THREADPOOL_SIZE ??= '32';
// `serve` runs for months with a heap that a first scan fills: V8's young generation, sized for
// throughput by default, keeps that scan's garbage; 8 MiB semi-spaces lower the peak RSS with no
// slower start (docs/performance.md §8). The flag must be given at start, so the process
// replaces itself once (same pid for systemd). Node 23.11+.
const SEMI_SPACE_FLAG = '--max-semi-space-size=8';
const HEAP_GROWING_FLAG = '--heap-growing-percent=100';
const reexec = (process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never }).execve;
/** Node's flags as given: on its command line or in NODE_OPTIONS (a user's own win over ours). */
const nodeFlags = (): string[] => [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
if (process.argv[2] === 'serve' && reexec && !nodeFlags().some((a) => a.startsWith('--max-semi-space-size'))) {
  reexec(process.execPath, [process.execPath, SEMI_SPACE_FLAG, ...process.execArgv, ...process.argv.slice(1)], process.env);
}
// A server's live set is small beside what it allocates (a walk of 100 000 files inside a backup,
// docs/performance.md §8): with V8's own heap growth its heap reached three times that set before
// each full collection; at most twice it now. V8 reads the factor at each collection, so it is
// set here, without a restart.
if (process.argv[2] === 'serve' && !nodeFlags().some((a) => a.startsWith('--heap-growing-percent'))) (require('node:v8') as { setFlagsFromString(flags: string): void }).setFlagsFromString(HEAP_GROWING_FLAG);
// Node 22.1+ keeps compiled modules on disk between runs (in the temp folder): a short command
// like `build` spends most of its time loading code otherwise. Older Node has no such call.
(require('node:module') as { enableCompileCache?: () => unknown }).enableCompileCache?.();
void import('./commands.js');
