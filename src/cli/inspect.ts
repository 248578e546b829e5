// `synthvhd inspect PATH [--json]`: a .raw, .raw.mbr or image folder.
import { readFile } from 'node:fs/promises';
import type { Argv } from 'yargs';
import { type MbrFile, parseMbrFile } from '../urbackup/mbr-file.js';
import { diskFileSystems, fileSystemLine } from './disk-filesystems.js';
import { diskJson } from './disk-json.js';
import { formatBytes as humanBytes } from '../base/units.js';
import { loadBackupDisk } from './source.js';

export interface InspectArgs {
  path: string;
  json: boolean;
}

export function inspectCommand(y: Argv): Argv<InspectArgs> {
  return y
    .positional('path', { type: 'string', demandOption: true, describe: 'a .raw, .raw.mbr or image folder' })
    .option('json', { type: 'boolean', default: false, describe: 'print JSON' }) as unknown as Argv<InspectArgs>;
}

function mbrJson(m: MbrFile) {
  if (m.kind === 'whole-disk') return { version: m.version, kind: m.kind, warnings: m.warnings };
  return {
    version: m.version,
    kind: m.kind,
    deviceNumber: m.deviceNumber,
    partitionNumber: m.partitionNumber,
    serial: m.serial,
    volumeName: m.volumeName,
    fsName: m.fsName,
    sectorSize: m.sectorSize,
    diskSignature: m.mbr.readUInt32LE(440).toString(16).padStart(8, '0'),
    gpt: m.gpt && Object.fromEntries(Object.entries(m.gpt).map(([k, v]) => [k, { pos: v.pos, length: v.data.length }])),
    extraData: m.extra ? { pos: m.extra.pos, length: m.extra.data.length } : null,
    errmsg: m.errmsg,
    warnings: m.warnings,
  };
}

export async function runInspect(a: InspectArgs, out: (s: string) => void): Promise<void> {
  if (a.path.endsWith('.mbr')) {
    const j = mbrJson(parseMbrFile(await readFile(a.path).catch((e: NodeJS.ErrnoException) => {
      throw new Error(`${a.path}: cannot read (${e.code})`);
    }), a.path));
    out(a.json ? JSON.stringify({ path: a.path, mbr: j }, null, 2) : Object.entries(j).filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join('\n'));
    return;
  }
  const b = await loadBackupDisk(a.path);
  const segments = b.disk.layout.segments.map((s) => ({
    kind: s.kind,
    start: s.start,
    length: s.length,
    ...(s.kind === 'file' && { source: s.source.path, offset: s.offset }),
  }));
  const img = b.images[0]!;
  const filesystems = await diskFileSystems(b);
  const j = { path: a.path, ...diskJson(b), segments, filesystems };
  if (a.json) {
    out(JSON.stringify(j, null, 2));
    return;
  }
  out(`${img.dir}\n  client ${b.client}, backup time ${b.time.toISOString()}, ${img.complete ? 'complete' : 'INCOMPLETE (no .raw.sync)'}`);
  out(`  disk: ${j.table.toUpperCase()}, ${humanBytes(j.diskSize)} (${j.diskSize} bytes), ${j.sectorSize}-byte sectors, identity ${j.identity || '-'}`);
  out(`  files: ${j.files.map((f) => `${f.name} (${f.size} bytes)`).join(', ')}`);
  for (const f of filesystems) out(fileSystemLine(f));
  for (const p of j.partitions) out(`  partition #${p.number}: ${p.start}+${p.length} ${p.description}${p.imagedFrom ? ` ← volume of ${p.volumeLength} bytes from ${p.imagedFrom}` : ''}`);
  out('  segments:');
  for (const s of segments) out(`    ${s.kind.padEnd(5)} [${s.start}, ${s.start + s.length})${'source' in s ? ` ${s.source} @${s.offset}` : ''}`);
  for (const w of j.warnings) out(`  warning: ${w}`);
}
