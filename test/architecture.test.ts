// The folders under src/ are the stages of the pipeline, and imports run one way down it: a
// file imports only from its own folder or from folders of earlier stages (docs/architecture.md).
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const SRC = new URL('../../src/', import.meta.url).pathname;
/** The pipeline, first stage first. */
const STAGES = ['base', 'sys', 'partition-table', 'urbackup', 'disk', 'filesystem', 'container', 'io', 'catalog', 'fuse', 'serve', 'samba', 'doctor', 'cli'];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : /\.c?ts$/.test(e.name) ? [join(dir, e.name)] : [],
  );
}

const stageOf = (file: string): string => relative(SRC, file).split('/')[0]!;

test('every folder of src/ is a stage of the pipeline', (t) => {
  const folders = readdirSync(SRC, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  t.deepEqual(folders.filter((f) => !STAGES.includes(f)), []);
});

test('imports run one way down the pipeline', (t) => {
  const wrong: string[] = [];
  for (const file of sources(SRC)) {
    const from = STAGES.indexOf(stageOf(file));
    for (const m of readFileSync(file, 'utf8').matchAll(/(?:from\s+|import\()'(\.{1,2}\/[^']+)'/g)) {
      const target = resolve(dirname(file), m[1]!);
      if (STAGES.indexOf(stageOf(target)) > from) wrong.push(`${relative(SRC, file)} imports ${relative(SRC, target)}`);
    }
  }
  t.deepEqual(wrong, []);
});
