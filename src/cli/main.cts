#!/usr/bin/env node
// Entry point of `synthvhd`. CommonJS, and importing nothing statically, so it runs before
// anything starts libuv's thread pool (ES module loading reads files on it), which takes its size
// once: partition reads run on that pool, and 32 threads keep one stalled storage from holding up
// the reads of every other disk.
process.env.UV_THREADPOOL_SIZE ??= '32';
void import('./commands.js');
