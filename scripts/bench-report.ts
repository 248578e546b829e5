// The benchmark's results, the targets checked against them, and the printed table.

export const TARGETS = ['synthvhd-passthrough', 'synthvhd-reflink', 'xmount', 'raw'] as const;
export type Target = (typeof TARGETS)[number];

/** Every run, in measuring order, and their median. */
export interface Series {
  readonly runs: number[];
  readonly median: number;
}

export type PerTarget = Record<Target, Series>;

export interface BenchResults {
  readonly meta: {
    readonly quick: boolean;
    readonly runs: number;
    readonly date: string;
    readonly kernel: string;
    readonly cpus: number;
    readonly volumeBytes: number;
    readonly dataBytes: number;
    readonly fragExtents: number;
  };
  /**
   * MB/s (10^6 bytes per second) of 1 MiB reads over the volume: cold (page cache dropped),
   * warm (read before: everything cached), and fusePath (backing file cached, the FUSE file's
   * own pages dropped: the cost of the FUSE round trips alone).
   */
  readonly sequential: { readonly cold: PerTarget; readonly warm: PerTarget; readonly fusePath: PerTarget };
  /**
   * IOPS of 4 KiB random reads: jobs1/jobs4 with every cache dropped first; cachedJobs1/4 with
   * the backing files cached and the virtual file's own pages dropped (fio's default), where
   * each read is a FUSE request and its cost is the request path alone.
   */
  readonly random: { readonly runtimeSeconds: number; readonly jobs1: PerTarget; readonly jobs4: PerTarget; readonly cachedJobs1: PerTarget; readonly cachedJobs4: PerTarget };
  /** CPU seconds the serve process spent per GiB of a cold sequential read. */
  readonly cpu: { readonly passthroughPerGiB: Series; readonly reflinkPerGiB: Series };
  /** MB/s of an smbclient download, caches dropped before each run. */
  readonly samba: { readonly passthrough: Series; readonly reflink: Series; readonly plain: Series };
  readonly build: {
    readonly extents: number;
    readonly synthvhdSeconds: Series;
    /** cp --reflink=always plus the sync that makes its copy as durable as build's fsynced one. */
    readonly cpSeconds: Series;
    /** `node -e 0` from dropped caches: what any Node program costs before its first line. */
    readonly nodeStartSeconds: Series;
    readonly synthvhdExclusiveBytes: number;
    readonly cpExclusiveBytes: number;
  };
  readonly listing: {
    readonly backups: number;
    readonly clients: number;
    /** Spawn to mounted: the catalog scan and the mount. */
    readonly startSeconds: Series;
    readonly firstSeconds: Series;
    readonly secondSeconds: Series;
    /** Highest VmHWM of the serve process over the runs. */
    readonly peakRssBytes: number;
  };
  /** A large storage: scan and mount, listings, an idle server, and how soon changes show. */
  readonly scale?: ScaleResults;
  /** open() to the first 4 KiB of volume data of a disk never opened before, caches dropped. */
  readonly firstByte: { readonly passthroughMs: Series; readonly reflinkMs: Series };
  /**
   * Issue 12: per disk (the bench backup first, then the genuine ones) the bytes its `.raw` files
   * hold and each kind's file size; the bench backup's fixed against dynamic VHDX read whole through
   * FUSE cold (MB/s of the file) and downloaded over Samba (seconds).
   */
  readonly dynamic?: {
    readonly sizes: { disk: string; dataBytes: number; vhd: number | null; vhdxFixed: number | null; vhdx: number | null; vhdDynamic: number | null }[];
    readonly seqCold: { readonly fixed: Series; readonly dynamic: Series };
    readonly smbSeconds: { readonly fixed: Series; readonly dynamic: Series };
  };
  /** Issue 23: read-write opens of a served disk. */
  readonly overlay?: OverlayResults;
}

/** Section 8 (issue 23), one serve mode: every figure with O_DIRECT, runs alternated. */
export interface OverlayModeResults {
  /** MB/s of 1 MiB sequential writes: through a read-write open of the served disk, and into a fresh file on the overlay folder's filesystem. */
  readonly seqWrite: { readonly served: Series; readonly plain: Series };
  /** IOPS of 4 KiB random writes, the same two. */
  readonly randWrite: { readonly served: Series; readonly plain: Series };
  /** MB/s of 1 MiB sequential reads of ranges nobody wrote: through a read-write open and a read-only open of the disk. */
  readonly seqRead: { readonly readWrite: Series; readonly readOnly: Series };
  /** IOPS of 4 KiB random reads, the same two. */
  readonly randRead: { readonly readWrite: Series; readonly readOnly: Series };
}

export interface OverlayResults {
  /** Bytes of each sequential run, and seconds of each random one. */
  readonly seqBytes: number;
  readonly runtimeSeconds: number;
  readonly passthrough: OverlayModeResults;
  readonly reflink: OverlayModeResults;
}

export interface ScaleResults {
  readonly backups: number;
  readonly clients: number;
  /** Spawn to mounted. */
  readonly startSeconds: number;
  /** Beside it, from dropped caches too: `node -e 0`, and `ls -lR` of the storage folder itself (no synthvhd). */
  readonly nodeStartSeconds: number;
  readonly storageListingSeconds: number;
  /** Medians over the runs: the first with the kernel's dentries dropped, the second right after. */
  readonly firstSeconds: number;
  /**
   * The first of those listings, the first after the server started: it also computes every
   * dynamic disk's size (its .raw's data map, on the file's first stat), which the later ones find kept.
   */
  readonly firstAfterStartSeconds: number;
  readonly secondSeconds: number;
  /** CPU of the serve process over `idleSeconds` with nothing happening, in % of one core. */
  readonly idleCpuPercent: number;
  readonly idleSeconds: number;
  readonly peakRssBytes: number;
  /** From a new backup's `.raw.sync` appearing to its file listed in the mount. */
  readonly newVisibleSeconds: number;
  /** From a backup's folder being removed to its file gone from the mount. */
  readonly deletedGoneSeconds: number;
}

/** The targets of issue 14 (they apply at 10 000 backups). */
export function scaleChecks(s: ScaleResults): Check[] {
  const at = `${s.backups} backups`;
  return [
    check(`${at}: mount up`, s.startSeconds, '<', 2, 's'),
    check(`${at}: first ls -lR`, s.firstSeconds, '<', 1.5, 's'),
    check(`${at}: first ls -lR after start`, s.firstAfterStartSeconds, '<', 1.5, 's'),
    check(`${at}: second ls -lR`, s.secondSeconds, '<', 0.3, 's'),
    check(`${at}: idle CPU over ${s.idleSeconds} s`, s.idleCpuPercent, '<', 1, '% of a core'),
    check(`${at}: serve peak RSS`, s.peakRssBytes / MiB, '<', 250, 'MiB'),
    check(`${at}: new backup visible after its .raw.sync`, s.newVisibleSeconds, '<=', 5, 's'),
    check(`${at}: deleted backup gone`, s.deletedGoneSeconds, '<=', 5, 's'),
  ];
}

export function scaleTable(s: ScaleResults, cs: readonly Check[] = []): string {
  return [
    `Scale: ${s.backups} backups over ${s.clients} clients (issue 14)`,
    rows(
      ['step', 'value'],
      [
        ['serve start (scan + mount), s', num(s.startSeconds, 3)],
        ['  beside it: node -e 0, cold, s', num(s.nodeStartSeconds, 3)],
        ['  beside it: ls -lR of the storage itself, cold, s', num(s.storageListingSeconds, 3)],
        ['first ls -lR, s', num(s.firstSeconds, 3)],
        ['  the first after start (maps computed), s', num(s.firstAfterStartSeconds, 3)],
        ['second ls -lR, s', num(s.secondSeconds, 3)],
        [`idle CPU over ${s.idleSeconds} s, % of a core`, num(s.idleCpuPercent, 2)],
        ['peak RSS, MiB', num(s.peakRssBytes / MiB, 1)],
        ['new backup visible after .raw.sync, s', num(s.newVisibleSeconds, 2)],
        ['deleted backup gone, s', num(s.deletedGoneSeconds, 2)],
      ],
    ),
    ...(cs.length ? ['', checkRows(cs)] : []),
  ].join('\n') + '\n';
}

export interface Check {
  readonly what: string;
  readonly value: number;
  readonly limit: number;
  /** '>=' / '<=' / '<' between value and limit. */
  readonly rule: '>=' | '<=' | '<';
  readonly unit: string;
  readonly pass: boolean;
}

export function series(runs: number[]): Series {
  const s = [...runs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  const median = s.length === 0 ? NaN : s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { runs, median };
}

export function check(what: string, value: number, rule: Check['rule'], limit: number, unit: string): Check {
  const pass = rule === '>=' ? value >= limit : rule === '<=' ? value <= limit : value < limit;
  return { what, value, limit, rule, unit, pass };
}

const MiB = 1024 * 1024;

/** build may take this much longer than `cp --reflink=always` + `sync` (issue 11). */
const BUILD_ALLOWANCE_SECONDS = 0.3;

/**
 * Issue 12: the bench backup's dynamic VHDX ≤ 1.02 × data + 8 MiB, and a cold sequential read of
 * it within 10 % of the fixed one's: the time of reading each whole file, which is what a copy
 * costs. Per byte of file the dynamic one cannot keep up when the storage is what limits: the
 * fixed file's extra bytes are the volume's holes, which cost no storage reads (equal work gave 0.74x).
 */
export function dynamicChecks(d: NonNullable<BenchResults['dynamic']>): Check[] {
  const bench = d.sizes[0]!;
  return [
    check('dynamic VHDX / (1.02 × data + 8 MiB)', (bench.vhdx ?? Infinity) / (1.02 * bench.dataBytes + 8 * MiB), '<=', 1, '×'),
    check('FUSE seq cold, whole file, dynamic s / fixed VHDX s', fileSeconds(bench.vhdx, d.seqCold.dynamic) / fileSeconds(bench.vhdxFixed, d.seqCold.fixed), '<=', 1.1, '×'),
  ];
}

/**
 * Issue 23: writes through a read-write open at least this share of the same writes into a file on
 * the overlay folder's own filesystem (reflink mode, on a kernel with passthrough, promises more).
 */
const OVERLAY_WRITE_RATIO = { passthrough: 0.5, reflink: 0.9 } as const;
/** Issue 23: reads of unwritten ranges through a read-write open against a read-only open. */
const OVERLAY_READ_RATIO = 0.8;

export function overlayChecks(o: OverlayResults): Check[] {
  const ratio = (pair: Record<string, Series>, a: string, b: string): number => pair[a]!.median / pair[b]!.median;
  return (['passthrough', 'reflink'] as const).flatMap((mode) => {
    const m = o[mode];
    return [
      check(`read-write open, ${mode}: 1 MiB seq write / plain file`, ratio(m.seqWrite, 'served', 'plain'), '>=', OVERLAY_WRITE_RATIO[mode], '×'),
      check(`read-write open, ${mode}: 4 KiB random write / plain file`, ratio(m.randWrite, 'served', 'plain'), '>=', OVERLAY_WRITE_RATIO[mode], '×'),
      check(`read-write open, ${mode}: 1 MiB seq read unwritten / read-only open`, ratio(m.seqRead, 'readWrite', 'readOnly'), '>=', OVERLAY_READ_RATIO, '×'),
      check(`read-write open, ${mode}: 4 KiB random read unwritten / read-only open`, ratio(m.randRead, 'readWrite', 'readOnly'), '>=', OVERLAY_READ_RATIO, '×'),
    ];
  });
}

/** The targets of issues 6, 11 and 12, as ratios of medians measured side by side in this run. */
export function checks(r: BenchResults): Check[] {
  const out: Check[] = [];
  const { cold, warm } = r.sequential;
  for (const mode of ['passthrough', 'reflink'] as const) {
    const t: Target = `synthvhd-${mode}`;
    out.push(
      check(`sequential cold ${mode} / xmount`, cold[t].median / cold.xmount.median, '>=', 1.2, '×'),
      check(`sequential cold ${mode} / raw`, cold[t].median / cold.raw.median, '>=', 0.7, '×'),
      check(`sequential warm ${mode} / xmount`, warm[t].median / warm.xmount.median, '>=', 2, '×'),
      check(`random 4 KiB, 4 jobs, ${mode} / xmount`, r.random.jobs4[t].median / r.random.jobs4.xmount.median, '>=', 1.2, '×'),
      check(`random 4 KiB backing cached, 1 job, ${mode} / xmount`, r.random.cachedJobs1[t].median / r.random.cachedJobs1.xmount.median, '>=', 1.2, '×'),
      check(`random 4 KiB backing cached, 4 jobs, ${mode} / xmount`, r.random.cachedJobs4[t].median / r.random.cachedJobs4.xmount.median, '>=', 1.2, '×'),
    );
  }
  out.push(
    ...(['passthrough', 'reflink'] as const).map((mode) => check(`Samba download ${mode} / plain .raw share`, r.samba[mode].median / r.samba.plain.median, '>=', 0.9, '×')),
    check('reflink build − (cp --reflink + sync)', r.build.synthvhdSeconds.median - r.build.cpSeconds.median, '<=', BUILD_ALLOWANCE_SECONDS, 's'),
    ...(r.dynamic ? dynamicChecks(r.dynamic) : []),
    ...(r.overlay ? overlayChecks(r.overlay) : []),
    check('reflink build exclusive space', r.build.synthvhdExclusiveBytes / MiB, '<', 1, 'MiB'),
    check(`listing ${r.listing.backups} backups, first ls -lR`, r.listing.firstSeconds.median, '<', 1, 's'),
    check(`listing ${r.listing.backups} backups, second ls -lR`, r.listing.secondSeconds.median, '<', 0.2, 's'),
    check('serve peak RSS', r.listing.peakRssBytes / MiB, '<', 200, 'MiB'),
    check('first byte, passthrough', r.firstByte.passthroughMs.median, '<', 50, 'ms'),
    ...(r.scale ? scaleChecks(r.scale) : []),
  );
  return out;
}

export const num = (v: number, digits = 0): string => (Number.isFinite(v) ? v.toFixed(digits) : '-');

export function rows(head: string[], body: string[][]): string {
  const all = [head, ...body];
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  return all.map((r) => '  ' + r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('   ')).join('\n');
}

export function checkRows(cs: readonly Check[]): string {
  return rows(['check', 'value', 'target', ''], cs.map((c) => [c.what, `${num(c.value, 2)} ${c.unit}`, `${c.rule} ${c.limit} ${c.unit}`, c.pass ? 'PASS' : 'FAIL']));
}

/** Seconds to read a file of `bytes` at the median of `mbs` (MB/s). */
function fileSeconds(bytes: number | null, mbs: Series): number {
  return bytes === null ? NaN : bytes / 1e6 / mbs.median;
}

function dynamicRows(d: NonNullable<BenchResults['dynamic']>): string[] {
  const mib = (b: number | null): string => (b === null ? '-' : num(b / MiB, 1));
  const bench = d.sizes[0]!;
  return [
    '7. Copy sizes (MiB): .raw data, fixed VHD, fixed VHDX, dynamic VHDX, dynamic VHD',
    rows(['disk', 'data', '.vhd', '-fixed.vhdx', '.vhdx', '-dynamic.vhd'], d.sizes.map((s) => [s.disk, mib(s.dataBytes), mib(s.vhd), mib(s.vhdxFixed), mib(s.vhdx), mib(s.vhdDynamic)])),
    '   bench backup, fixed against dynamic VHDX, passthrough',
    rows(
      ['measure', 'fixed', 'dynamic'],
      [
        ['FUSE seq cold, whole file, MB/s', num(d.seqCold.fixed.median), num(d.seqCold.dynamic.median)],
        // The fixed file's extra bytes are the volume's holes, which cost no storage reads.
        ['FUSE seq cold, whole file, s', num(fileSeconds(bench.vhdxFixed, d.seqCold.fixed), 2), num(fileSeconds(bench.vhdx, d.seqCold.dynamic), 2)],
        ['Samba download, s', num(d.smbSeconds.fixed.median, 2), num(d.smbSeconds.dynamic.median, 2)],
      ],
    ),
    '',
  ];
}

function overlayRows(o: OverlayResults): string[] {
  const n = (s: Series): string => num(s.median);
  return [
    `8. Read-write opens of the .vhd (issue 23), O_DIRECT: writes against a fresh file on the overlay folder's filesystem,`,
    `   reads of unwritten ranges against a read-only open (seq: 1 MiB over ${num(o.seqBytes / MiB)} MiB, MB/s; random: 4 KiB for ${o.runtimeSeconds} s, IOPS)`,
    rows(
      ['mode', 'seq write', 'plain file', 'rand write', 'plain file', 'seq read', 'read-only', 'rand read', 'read-only'],
      (['passthrough', 'reflink'] as const).map((mode) => {
        const m = o[mode];
        return [mode, n(m.seqWrite.served), n(m.seqWrite.plain), n(m.randWrite.served), n(m.randWrite.plain), n(m.seqRead.readWrite), n(m.seqRead.readOnly), n(m.randRead.readWrite), n(m.randRead.readOnly)];
      }),
    ),
    '',
  ];
}

/** `--only overlay`: section 8 and its targets. */
export function overlayTable(o: OverlayResults, cs: readonly Check[]): string {
  return [...overlayRows(o), 'Targets (issue 23)', checkRows(cs)].join('\n') + '\n';
}

/** `--only dynamic`: section 7 and its targets. */
export function dynamicTable(d: NonNullable<BenchResults['dynamic']>, cs: readonly Check[]): string {
  return [...dynamicRows(d), 'Targets (issue 12)', checkRows(cs)].join('\n') + '\n';
}

export function table(r: BenchResults, cs: readonly Check[]): string {
  const m = r.meta;
  const n = (s: Series, d = 0): string => num(s.median, d);
  const out = [
    `synthvhd benchmark ${m.quick ? '(quick) ' : ''}— ${m.date}, kernel ${m.kernel}, ${m.cpus} CPUs, median of ${m.runs} run(s), targets alternated`,
    `volume ${(m.volumeBytes / MiB).toFixed(0)} MiB with ${(m.dataBytes / MiB).toFixed(0)} MiB data; fragmented copy ${m.fragExtents} extents`,
    '',
    '1+2. Reads of the same volume bytes (sequential: 1 MiB, MB/s; random: 4 KiB, IOPS)',
    '     fuse path / backing cached = backing file cached, the virtual file\'s own pages dropped; cold = every cache dropped',
    rows(
      ['target', 'seq cold', 'seq warm', 'seq fuse path', 'rand cold 1 job', 'rand cold 4 jobs', 'rand cached 1 job', 'rand cached 4 jobs'],
      TARGETS.map((t) => [
        t, n(r.sequential.cold[t]), n(r.sequential.warm[t]), n(r.sequential.fusePath[t]),
        n(r.random.jobs1[t]), n(r.random.jobs4[t]), n(r.random.cachedJobs1[t]), n(r.random.cachedJobs4[t]),
      ]),
    ),
    `     serve CPU per GiB of a cold sequential read: passthrough ${n(r.cpu.passthroughPerGiB, 2)} s, reflink ${n(r.cpu.reflinkPerGiB, 2)} s`,
    '',
    '3. Samba on loopback, smbclient download, cold (MB/s)',
    rows(['share', 'MB/s'], [['synthvhd .vhd, passthrough', n(r.samba.passthrough)], ['synthvhd .vhd, reflink', n(r.samba.reflink)], ['plain .raw', n(r.samba.plain)]]),
    '',
    `4. Build of the fragmented backup (${r.build.extents} extents) on btrfs`,
    rows(
      ['command', 'seconds', 'exclusive KiB'],
      [
        ['synthvhd build --reflink always', n(r.build.synthvhdSeconds, 3), num(r.build.synthvhdExclusiveBytes / 1024)],
        ['cp --reflink=always, then sync', n(r.build.cpSeconds, 3), num(r.build.cpExclusiveBytes / 1024)],
        ['node -e 0 (Node start-up alone)', n(r.build.nodeStartSeconds, 3), '-'],
      ],
    ),
    '',
    `5. Listing ${r.listing.backups} backups over ${r.listing.clients} clients`,
    rows(
      ['step', 'value'],
      [
        ['serve start (scan + mount), s', n(r.listing.startSeconds, 3)],
        ['first ls -lR, s', n(r.listing.firstSeconds, 3)],
        ['second ls -lR, s', n(r.listing.secondSeconds, 3)],
        ['peak RSS, MiB', num(r.listing.peakRssBytes / MiB, 1)],
      ],
    ),
    '',
    ...(r.scale ? [scaleTable(r.scale)] : []),
    '6. open() to first 4 KiB of volume data, disk never opened before, cold (ms)',
    rows(['mode', 'ms'], [['passthrough', n(r.firstByte.passthroughMs, 1)], ['reflink (includes the build)', n(r.firstByte.reflinkMs, 1)]]),
    '',
    ...(r.dynamic ? dynamicRows(r.dynamic) : []),
    ...(r.overlay ? overlayRows(r.overlay) : []),
    'Targets (issues 6, 11, 12, 14 and 23)',
    checkRows(cs),
  ];
  return out.join('\n') + '\n';
}
