// Runs `serve` over files described by a JSON file, as a child process of a test:
//   node dist/test/helpers/serve-fixture.js DESCRIPTION.json
// The catalog re-reads the JSON on every scan, so a test adds or removes files by rewriting it.
// Prints "ready" on stdout once mounted; log lines go to stderr.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { type Layout, type Piece, paint } from '../../src/disk/layout.js';
import { stopOnSignals } from '../../src/cli/serve.js';
import { serve } from '../../src/serve/serve.js';
import type { Catalog, VirtualFile } from '../../src/catalog/virtual-file.js';

export type PieceSpec =
  | { kind: 'bytes'; start: number; base64: string }
  | { kind: 'file'; start: number; length: number; path: string; offset: number };

export interface FileSpec {
  dir: string;
  name: string;
  size: number;
  /** ISO time. */
  mtime: string;
  pieces: PieceSpec[];
  /** When set, layout() throws this message (a bad backup). */
  error?: string;
}

export interface FixtureSpec {
  mount: string;
  mode: 'passthrough' | 'reflink' | 'auto';
  cacheDir?: string;
  rescanMs?: number;
  /** serve's overlay options (docs/overlays.md). */
  readOnly?: boolean;
  overlayDir?: string;
  overlayLimit?: number;
  files: FileSpec[];
}

export function layoutOf(spec: FileSpec): Layout {
  if (spec.error) throw new Error(`${spec.dir}/${spec.name}: ${spec.error}`);
  const pieces: Piece[] = spec.pieces.map((p) => (p.kind === 'bytes' ? { kind: 'bytes', start: p.start, data: Buffer.from(p.base64, 'base64') } : { ...p, source: { path: p.path } }));
  return paint(spec.size, pieces);
}

function virtualFile(spec: FileSpec): VirtualFile {
  const paths = [...new Set(spec.pieces.flatMap((p) => (p.kind === 'file' ? [p.path] : [])))];
  return {
    dir: spec.dir,
    name: spec.name,
    size: spec.size,
    mtime: new Date(spec.mtime),
    key: `${spec.dir}/${spec.name}`,
    version: createHash('sha256').update(JSON.stringify([spec.size, spec.pieces])).digest('hex'),
    sources: paths.map((path) => ({ path })),
    access: { storage: [], client: [], disk: [] },
    layout: () => layoutOf(spec),
  };
}

function jsonCatalog(path: string): Catalog {
  return {
    async scan() {
      const spec = JSON.parse(await readFile(path, 'utf8')) as FixtureSpec;
      return { files: spec.files.map(virtualFile), warnings: [] };
    },
  };
}

async function main(path: string): Promise<void> {
  const spec = JSON.parse(readFileSync(path, 'utf8')) as FixtureSpec;
  const log = (line: string): boolean => process.stderr.write(`${line}\n`);
  const stop = stopOnSignals(log);
  const server = await serve({
    catalog: jsonCatalog(path),
    mount: spec.mount,
    mode: spec.mode,
    cacheDir: spec.cacheDir,
    allowOther: false,
    rescanMs: spec.rescanMs,
    ...(spec.readOnly !== undefined && { readOnly: spec.readOnly }),
    ...(spec.overlayDir !== undefined && { overlayDir: spec.overlayDir }),
    ...(spec.overlayLimit !== undefined && { overlayLimit: spec.overlayLimit }),
    log,
  });
  stop.serving(server);
  process.stdout.write('ready\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv[2]!).catch((e: Error) => {
    process.stderr.write(`${e.message}\n`);
    process.exit(1);
  });
}
