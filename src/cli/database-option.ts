// The --urbackup-db option shared by serve, list and build.
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { AssociationDatabase, STORAGE_DB } from '../urbackup/database.js';

export const DATABASE_OPTION = {
  type: 'string',
  describe: `UrBackup's backup_server.db for SYSVOL/ESP associations (default: <storage>/${STORAGE_DB} when it exists; the live one is /var/urbackup/backup_server.db); without it a heuristic pairs them`,
} as const;

/** The database named on the command line, or the storage's nightly copy when there is one. */
export async function databaseFor(storage: string, option: string | undefined): Promise<AssociationDatabase | undefined> {
  if (option) return new AssociationDatabase(option);
  const inStorage = join(storage, STORAGE_DB);
  return (await access(inStorage).then(() => true, () => false)) ? new AssociationDatabase(inStorage) : undefined;
}
