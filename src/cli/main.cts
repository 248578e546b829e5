#!/usr/bin/env node
// Entry point of `synthvhd`. CommonJS, and importing nothing statically, so it runs before
// anything starts libuv's thread pool (ES module loading reads files on it), which takes its size
// once: partition reads run on that pool, and 32 threads keep one stalled storage from holding up
// the reads of every other disk.
process.env.UV_THREADPOOL_SIZE ??= '32';
// Node 22.1+ keeps compiled modules on disk between runs (in the temp folder): a short command
// like `build` spends most of its time loading code otherwise. Older Node has no such call.
(require('node:module') as { enableCompileCache?: () => unknown }).enableCompileCache?.();
void import('./commands.js');
