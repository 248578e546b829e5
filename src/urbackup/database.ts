// SYSVOL/ESP associations from UrBackup's database (docs/urbackup-raw-format.md §5.2: tables
// backup_images and assoc_images), read from a private copy so the live server is never locked
// and nothing is written next to the database (no -shm file).
import { execFile } from 'node:child_process';
import { copyFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** The nightly copy inside the storage (docs/urbackup-raw-format.md §5.2). */
export const STORAGE_DB = join('urbackup', 'backup_server.db');

const QUERY = `SELECT m.path AS main, p.path AS partner
  FROM assoc_images a
  JOIN backup_images m ON m.id = a.img_id
  JOIN backup_images p ON p.id = a.assoc_id
  WHERE p.complete = 1
  ORDER BY p.backuptime DESC`;

/**
 * `<client>/<folder>` of an image path as the database stores it (`<storage>/<client>/<folder>/<file>.raw`):
 * the storage may have been mounted elsewhere when the row was written, so only the last parts count.
 */
export function folderKeyOfPath(path: string): string | undefined {
  const parts = path.split(/[\\/]+/).filter(Boolean);
  return parts.length >= 3 ? `${parts.at(-3)}/${parts.at(-2)}` : undefined;
}

/** Main image folder key → partner folder keys. */
export type Associations = ReadonlyMap<string, readonly string[]>;

export function associationsFromRows(rows: readonly { main: string; partner: string }[]): Associations {
  const out = new Map<string, string[]>();
  for (const r of rows) {
    const m = folderKeyOfPath(r.main);
    const p = folderKeyOfPath(r.partner);
    if (!m || !p) continue;
    const list = out.get(m) ?? [];
    if (!list.includes(p)) list.push(p);
    out.set(m, list);
  }
  return out;
}

async function stamp(path: string): Promise<string> {
  try {
    const st = await stat(path);
    return `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return '-';
  }
}

/** Reads the associations of `dbPath` (and its `-wal`), again only when either file changed. */
export class AssociationDatabase {
  private cached?: { stamp: string; value: Associations };

  constructor(readonly path: string) {}

  async read(): Promise<Associations> {
    const s = `${await stamp(this.path)}/${await stamp(`${this.path}-wal`)}`;
    if (this.cached?.stamp === s) return this.cached.value;
    if (s.startsWith('-/')) throw new Error(`${this.path}: no such database`);
    const dir = await mkdtemp(join(tmpdir(), 'synthvhd-db-'));
    try {
      const copy = join(dir, 'backup_server.db');
      await copyFile(this.path, copy);
      await copyFile(`${this.path}-wal`, `${copy}-wal`).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
      });
      let stdout: string;
      try {
        ({ stdout } = await execFileP('sqlite3', ['-json', copy, QUERY], { maxBuffer: 256 << 20 }));
      } catch (e) {
        const err = e as NodeJS.ErrnoException & { stderr?: string };
        throw new Error(
          err.code === 'ENOENT' ? `${this.path}: the sqlite3 command is needed to read UrBackup's database (apt-get install sqlite3)` : `${this.path}: cannot read assoc_images (${(err.stderr ?? err.message).trim()})`,
        );
      }
      const rows = stdout.trim() ? (JSON.parse(stdout) as { main: string; partner: string }[]) : [];
      const value = associationsFromRows(rows);
      this.cached = { stamp: s, value };
      return value;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}
