// The stable JSON shape of a disk in `list --json` and `inspect --json` (docs/json-output.md §2).
import { type BackupDisk, diskId } from '../catalog/backup-disk.js';
import { containerSize, formatsFor } from '../catalog/container-file.js';
import { CONTAINER_KINDS, bitmapNotes, kindFileName, kindPresentBlocks } from '../catalog/container-kind.js';
import { guidToString } from '../partition-table/gpt.js';

export function diskJson(b: BackupDisk) {
  return {
    client: b.client,
    folder: b.folder,
    time: b.time.toISOString(),
    id: guidToString(diskId(b)),
    table: b.disk.table,
    sectorSize: b.disk.sectorSize,
    diskSize: b.disk.layout.size,
    identity: b.disk.identity,
    files: formatsFor(b, CONTAINER_KINDS).map((f) => {
      const present = kindPresentBlocks(b, f);
      return {
        name: kindFileName(b.folder, f),
        format: f,
        size: containerSize(b, f),
        ...(present && { blockSize: present.blockSize, blocks: present.blocks.length, presentBlocks: present.count }),
      };
    }),
    images: b.images.map((i) => ({ folder: i.folder, letter: i.letter, raw: i.raw, complete: i.complete })),
    partnersFrom: b.partnersFrom ?? null,
    partitions: b.disk.partitions.map((p) => ({
      number: p.number,
      start: p.start,
      length: p.length,
      description: p.description,
      imagedFrom: p.imagedFrom ?? null,
      volumeLength: p.volumeLength ?? null,
    })),
    warnings: [...b.disk.warnings, ...b.warnings, ...bitmapNotes(b)],
  };
}
