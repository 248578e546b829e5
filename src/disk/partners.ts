// Which SYSVOL/ESP images belong to which main image (docs/urbackup-raw-format.md §5).
import { diskIdentity } from './assemble.js';
import type { PartitionedMbrFile } from '../urbackup/mbr-file.js';
import type { ImageFolder } from '../urbackup/storage.js';

/** UrBackup's letters for the partner images (docs/urbackup-raw-format.md §5.1: letter NOT IN ('SYSVOL','ESP')). */
export const PARTNER_LETTERS = ['SYSVOL', 'ESP'] as const;

export function isPartnerLetter(letter: string): boolean {
  return (PARTNER_LETTERS as readonly string[]).includes(letter);
}

export interface Candidate {
  readonly folder: ImageFolder;
  /** Undefined for whole-disk images, which never pair. */
  readonly mbr?: PartitionedMbrFile;
}

export type AssociationSource = 'database' | 'heuristic';

export interface Group<T extends Candidate> {
  readonly main: T;
  readonly partners: T[];
  readonly source?: AssociationSource;
}

export interface Grouping<T extends Candidate> {
  readonly groups: Group<T>[];
  readonly notes: string[];
}

/** A folder's key in UrBackup's database paths and here: `<client>/<folder>`. */
export function folderKey(f: ImageFolder): string {
  return `${f.client}/${f.folder}`;
}

/**
 * Groups images into disks. `known` maps a main image's folder key to its partners' folder keys
 * (from UrBackup's database); for main images it does not cover, the heuristic of docs/urbackup-raw-format.md §5.3 applies:
 * same client, partner time ≤ the main image's and after the previous main image of the same
 * letter, same device and disk identity, another partition number. Two candidates of one letter
 * are ambiguous: the main image is then served alone. Partners that join no main image, and
 * whole-disk images, are disks of their own.
 */
export function groupImages<T extends Candidate>(images: readonly T[], known?: ReadonlyMap<string, readonly string[]>): Grouping<T> {
  const byKey = new Map(images.map((i) => [folderKey(i.folder), i]));
  const notes: string[] = [];
  const used = new Set<T>();
  const groups: Group<T>[] = [];
  const mains = images.filter((i) => !isPartnerLetter(i.folder.letter)).sort((a, b) => a.folder.time.getTime() - b.folder.time.getTime());
  // Candidates by client and letter, and each main's predecessor of its client and letter: the
  // heuristic looks at those alone, not at every image for every main (docs/architecture.md §6).
  const byClientLetter = new Map<string, T[]>();
  for (const i of images) {
    const k = clientLetter(i.folder.client, i.folder.letter);
    const list = byClientLetter.get(k);
    if (list) list.push(i);
    else byClientLetter.set(k, [i]);
  }
  const lastMain = new Map<string, T>();
  const previousOf = new Map<T, T | undefined>();
  for (const main of mains) {
    const k = clientLetter(main.folder.client, main.folder.letter);
    previousOf.set(main, lastMain.get(k));
    lastMain.set(k, main);
  }
  for (const main of mains) {
    const fromDb = known?.get(folderKey(main.folder));
    if (fromDb) {
      const partners = fromDb.map((k) => byKey.get(k)).filter((p): p is T => p !== undefined && p.mbr !== undefined);
      partners.forEach((p) => used.add(p));
      groups.push({ main, partners, source: 'database' });
      continue;
    }
    const partners = heuristicPartners(main, previousOf.get(main), (letter) => byClientLetter.get(clientLetter(main.folder.client, letter)) ?? [], notes);
    partners.forEach((p) => used.add(p));
    groups.push({ main, partners, ...(partners.length > 0 && { source: 'heuristic' as const }) });
  }
  for (const i of images) if (isPartnerLetter(i.folder.letter) && !used.has(i)) groups.push({ main: i, partners: [] });
  return { groups, notes };
}

function clientLetter(client: string, letter: string): string {
  return `${client}\0${letter}`;
}

/** `previous`: the main image of the same client and letter before this one; `imagesOf`: the client's images of a letter. */
function heuristicPartners<T extends Candidate>(main: T, previous: T | undefined, imagesOf: (letter: string) => readonly T[], notes: string[]): T[] {
  const m = main.mbr;
  if (!m) return [];
  const t = main.folder.time.getTime();
  const after = previous ? previous.folder.time.getTime() : -Infinity;
  const identity = diskIdentity(m);
  const out: T[] = [];
  for (const letter of PARTNER_LETTERS) {
    const candidates = imagesOf(letter).filter((p) => {
      const pm = p.mbr;
      const pt = p.folder.time.getTime();
      return (
        pm !== undefined &&
        pt <= t &&
        pt > after &&
        pm.deviceNumber === m.deviceNumber &&
        pm.partitionNumber !== m.partitionNumber &&
        identity !== '' &&
        diskIdentity(pm) === identity
      );
    });
    if (candidates.length === 1) out.push(candidates[0]!);
    else if (candidates.length > 1) {
      notes.push(
        `${main.folder.dir}: ${candidates.length} ${letter} images could belong to this disk (${candidates.map((c) => c.folder.folder).join(', ')}); not guessing, serving it without ${letter}`,
      );
    }
  }
  return out;
}
