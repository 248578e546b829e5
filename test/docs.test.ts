// Every citation of a project document resolves: `docs/<file>.md §N.M` names a file in docs/
// with a heading numbered N.M, so a clone can follow the comments (docs/architecture.md).
import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const ROOT = new URL('../../', import.meta.url).pathname;
const DOCS = join(ROOT, 'docs');
/** Where citations live: the code, the tests, the scripts, the README and the docs themselves. */
const CITING = ['src', 'test', 'scripts', 'docs'];
/** This file's own examples are not citations. */
const SELF = /docs\.test\.[jt]s$/;

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'fixtures' ? [] : files(p);
    return /\.(c?ts|md|sh)$/.test(e.name) && !SELF.test(e.name) ? [p] : [];
  });
}

/** Section numbers of a Markdown file's numbered headings: "## 2. Title" → 2, "### 2.1 Title" → 2.1. */
function sections(file: string): Set<string> {
  const out = new Set<string>();
  for (const m of readFileSync(file, 'utf8').matchAll(/^#{2,6} (\d+(?:\.\d+)*)\.?\s/gm)) out.add(m[1]!);
  return out;
}

/**
 * `docs/x.md §1.2, §3–4` and the like: the file, then every § number that follows it (a range
 * cites both ends). A `;` ends the list, since what follows may cite another document.
 */
const CITATION = /docs\/([\w-]+\.md)[`)\]]*((?:[ ,–-]*§\d+(?:\.\d+)*(?:–\d+(?:\.\d+)*)?)*)/g;

function citations(text: string): { doc: string; section: string }[] {
  const out: { doc: string; section: string }[] = [];
  for (const m of text.matchAll(CITATION)) {
    for (const s of m[2]!.matchAll(/\d+(?:\.\d+)*/g)) out.push({ doc: m[1]!, section: s[0] });
    if (!m[2]) out.push({ doc: m[1]!, section: '' });
  }
  return out;
}

test('the citation pattern finds files, sections, lists and ranges', (t) => {
  t.deepEqual(citations('(docs/a.md §3.5, §6.2; MS-VHDX §2.5) and `docs/b.md` §2–3 and docs/c.md'), [
    { doc: 'a.md', section: '3.5' },
    { doc: 'a.md', section: '6.2' },
    { doc: 'b.md', section: '2' },
    { doc: 'b.md', section: '3' },
    { doc: 'c.md', section: '' },
  ]);
});

test('every docs/ citation in the code, tests, scripts and README names an existing file and section', (t) => {
  const known = new Map(readdirSync(DOCS).filter((f) => f.endsWith('.md')).map((f) => [f, sections(join(DOCS, f))]));
  const broken: string[] = [];
  let count = 0;
  for (const file of [...CITING.flatMap((d) => files(join(ROOT, d))), join(ROOT, 'README.md')]) {
    for (const c of citations(readFileSync(file, 'utf8'))) {
      count++;
      const secs = known.get(c.doc);
      if (!secs) broken.push(`${relative(ROOT, file)}: docs/${c.doc} does not exist`);
      else if (c.section && !secs.has(c.section)) broken.push(`${relative(ROOT, file)}: docs/${c.doc} has no section ${c.section}`);
    }
  }
  t.deepEqual(broken, []);
  t.true(count > 50, `only ${count} citations found: is the pattern still right?`);
});

test('nothing cites documents outside the repository', (t) => {
  const outside = /\.\.\/shared\/docs|shared\/design\.md|\bdesign\.md\b/;
  const hits = [...['src', 'test', 'scripts'].flatMap((d) => files(join(ROOT, d))), join(ROOT, 'README.md')]
    .filter((f) => existsSync(f) && outside.test(readFileSync(f, 'utf8')))
    .map((f) => relative(ROOT, f));
  t.deepEqual(hits, []);
});

const README = join(ROOT, 'README.md');

/** Markdown headings of a file, without their `#`s and backquotes. */
function headings(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(/^#{1,6} (.+)$/gm)].map((m) => m[1]!.replace(/`/g, '').trim());
}

/** GitHub's anchor of a heading: lower case, punctuation but `-` dropped, each space a `-`. */
const anchor = (heading: string): string => heading.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replace(/ /g, '-');

/**
 * `README "Title"` in a comment, the title maybe broken over comment lines: the README's section
 * titled so (a heading that starts with it), e.g. `README "Identity and --unique-ids"`.
 */
function readmeCitations(text: string): string[] {
  return [...text.matchAll(/README "([^"]+)"/g)].map((m) => m[1]!.replace(/\s*\n\s*(?:\/\/|\*)?\s*/g, ' ').trim());
}

test('every README "Section" citation in the code, tests, scripts and docs names a README heading', (t) => {
  const titles = headings(README);
  const broken: string[] = [];
  let count = 0;
  for (const file of CITING.flatMap((d) => files(join(ROOT, d)))) {
    for (const title of readmeCitations(readFileSync(file, 'utf8'))) {
      count++;
      if (!titles.some((h) => h.startsWith(title))) broken.push(`${relative(ROOT, file)}: README has no section "${title}"`);
    }
  }
  t.deepEqual(broken, []);
  t.true(count > 3, `only ${count} README citations found: is the pattern still right?`);
});

test('every relative link of the README and docs/ reaches a file, and every #anchor a heading', (t) => {
  const broken: string[] = [];
  for (const file of [README, ...files(DOCS).filter((f) => f.endsWith('.md'))]) {
    for (const m of readFileSync(file, 'utf8').matchAll(/\]\(([^)\s]+)\)/g)) {
      const [path, hash] = m[1]!.split('#') as [string, string | undefined];
      if (/^[a-z]+:/.test(path)) continue;
      const target = path ? join(file, '..', path) : file;
      if (!existsSync(target)) broken.push(`${relative(ROOT, file)}: ${m[1]} does not exist`);
      else if (hash !== undefined && target.endsWith('.md') && !headings(target).map(anchor).includes(hash)) broken.push(`${relative(ROOT, file)}: ${m[1]} names no heading`);
    }
  }
  t.deepEqual(broken, []);
});

test('the README starts with the demo and test commands for a fresh Debian 12, and the CI runs that test command', (t) => {
  const readme = readFileSync(README, 'utf8');
  const firstScreens = readme.split('\n').slice(0, 60).join('\n');
  t.regex(firstScreens, /^scripts\/run demo\b/m);
  t.regex(firstScreens, /^scripts\/run test\b/m);
  t.regex(firstScreens, /attach vdisk readonly/, 'how to attach a backup from Windows is near the top');
  const ci = readFileSync(join(ROOT, '.ci', 'run'), 'utf8');
  t.regex(ci, /^scripts\/run test$/m, '.ci/run runs the README test command');
});
