// Section 9's results (issue 22), its targets checked against them, and its printed rows.
import { type Check, type Series, check, checkRows, num, rows } from './bench-report.js';

const MiB = 1024 * 1024;

/**
 * Seconds of the cold walks of one volume: synthvhd's image folder on a running server (one that
 * walked another backup before) and on a server started for the walk, against `other` (ntfs-3g
 * or the kernel's ext4).
 */
export interface WalkSeconds {
  readonly running: Series;
  readonly fresh: Series;
  readonly other: Series;
}
export interface Walks {
  readonly files: number;
  /** Every file read (`find -exec cat`). */
  readonly readSeconds: WalkSeconds;
  /** Every name stat'ed, nothing read (`find -printf '%s %T@'`). */
  readonly statSeconds: WalkSeconds;
}

export interface BrowseResults {
  readonly ntfs: Walks;
  readonly ext4: Walks;
  /** serve's highest VmHWM over the cold reading walks of the ext4 volume of `walkPeakRssFiles` files. */
  readonly walkPeakRssBytes: number;
  readonly walkPeakRssFiles: number;
  /** The first READDIR of an image folder no request had opened, caches dropped. */
  readonly firstListingMs: Series;
  /** The large file read whole through a passthrough-mode and a reflink-mode mount, and its extents read from the `.raw`, cold, 1 MiB reads. */
  readonly largeFile: { readonly bytes: number; readonly extents: number; readonly passthroughSeconds: Series; readonly reflinkSeconds: Series; readonly rawSeconds: Series };
  /** `extract --reflink always` of the large file, and `cp --reflink=always` of a copy sharing its extents, each then `sync`. */
  readonly extract: { readonly bytes: number; readonly extractSeconds: Series; readonly cpSeconds: Series; readonly nodeStartSeconds: Series; readonly extractExclusiveBytes: number };
}

/** extract may take this much longer than `cp --reflink=always` + `sync` (issue 22). */
const EXTRACT_ALLOWANCE_SECONDS = 0.3;

/** How many times faster a running synthvhd server walked than the other side (their seconds over ours; docs/performance.md §3 says why running). */
const speedup = (s: WalkSeconds): number => s.other.median / s.running.median;

/** The targets of issue 22, as ratios of medians measured side by side in this run. */
export function browseChecks(b: BrowseResults): Check[] {
  return [
    check(`NTFS ${b.ntfs.files} files, cold walk reading every file / ntfs-3g`, speedup(b.ntfs.readSeconds), '>=', 1.5, '×'),
    check(`NTFS ${b.ntfs.files} files, cold walk, names and stat / ntfs-3g`, speedup(b.ntfs.statSeconds), '>=', 2, '×'),
    check(`ext4 ${b.ext4.files} files, cold walk reading every file / kernel ext4`, speedup(b.ext4.readSeconds), '>=', 0.5, '×'),
    check(`ext4 ${b.ext4.files} files, cold walk, names and stat / kernel ext4`, speedup(b.ext4.statSeconds), '>=', 0.5, '×'),
    check('first listing of a never-opened image folder, cold', b.firstListingMs.median, '<', 100, 'ms'),
    check(`${(b.largeFile.bytes / MiB).toFixed(0)} MiB file cold, reflink mode / the same .raw bytes`, b.largeFile.rawSeconds.median / b.largeFile.reflinkSeconds.median, '>=', 0.9, '×'),
    // Through the server, as the disks' sequential cold passthrough row (docs/browsing.md §3 says why).
    check(`${(b.largeFile.bytes / MiB).toFixed(0)} MiB file cold, passthrough mode / the same .raw bytes`, b.largeFile.rawSeconds.median / b.largeFile.passthroughSeconds.median, '>=', 0.7, '×'),
    check(`serve peak RSS, walk of ${b.walkPeakRssFiles} files`, b.walkPeakRssBytes / MiB, '<', 250, 'MiB'),
    check('extract --reflink always − (cp --reflink + sync)', b.extract.extractSeconds.median - b.extract.cpSeconds.median, '<=', EXTRACT_ALLOWANCE_SECONDS, 's'),
    check('extract --reflink always exclusive space', b.extract.extractExclusiveBytes / MiB, '<', 1, 'MiB'),
  ];
}

/** Section 9's rows, then (given checks) its targets. */
export function browseTable(b: BrowseResults, cs: readonly Check[] = []): string {
  const s = (x: Series): string => num(x.median, 3);
  const walkRows = (name: string, other: string, w: Walks): string[][] => [
    [`${name} ${w.files} files, read every file`, s(w.readSeconds.running), `${other} ${s(w.readSeconds.other)}`],
    ['  on a server started for the walk', s(w.readSeconds.fresh), '-'],
    [`${name} ${w.files} files, names and stat`, s(w.statSeconds.running), `${other} ${s(w.statSeconds.other)}`],
    ['  on a server started for the walk', s(w.statSeconds.fresh), '-'],
  ];
  const mib = (b.largeFile.bytes / MiB).toFixed(0);
  return [
    '9. Browsing the files of a backup (issue 22), cold, seconds',
    rows(
      ['measure', 'synthvhd', 'beside it'],
      [
        ...walkRows('NTFS', 'ntfs-3g', b.ntfs),
        ...walkRows('ext4', 'kernel', b.ext4),
        ['first listing of an image folder, ms', num(b.firstListingMs.median, 1), '-'],
        [`${mib} MiB file (${b.largeFile.extents} extents), passthrough mode`, s(b.largeFile.passthroughSeconds), `.raw ${s(b.largeFile.rawSeconds)}`],
        [`${mib} MiB file, reflink mode (cloned at open)`, s(b.largeFile.reflinkSeconds), '-'],
        [`extract --reflink always ${mib} MiB, then sync`, s(b.extract.extractSeconds), `cp --reflink + sync ${s(b.extract.cpSeconds)}`],
        ['  node -e 0 (Node start-up alone)', '-', s(b.extract.nodeStartSeconds)],
        ['extract exclusive KiB', num(b.extract.extractExclusiveBytes / 1024), '-'],
        [`serve peak RSS over the ext4 walk, MiB`, num(b.walkPeakRssBytes / MiB, 1), '-'],
      ],
    ),
    '',
    ...(cs.length ? ['Targets (issue 22)', checkRows(cs), ''] : []),
  ].join('\n') + '\n';
}
