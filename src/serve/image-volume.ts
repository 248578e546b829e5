// An image's volume, opened for browsing or extracting (docs/browsing.md §2): the `.raw` from byte
// 524288 with its length from urbackup/raw-file.ts, its filesystem detected and its reader opened,
// or, for a volume no reader can open, the reason, as a note a Windows user can read.
import { stat } from 'node:fs/promises';
import type { Bytes } from '../base/units.js';
import { detectVolume } from '../filesystem/detect.js';
import { CorruptVolumeError, type VolumeFileSystem } from '../filesystem/volume-fs.js';
import { type FileVolume, openFileVolume } from '../io/file-volume.js';
import { mayHaveSyntheticGpt, RAW_HEAD_BYTES, RAW_VOLUME_OFFSET, volumeLength } from '../urbackup/raw-file.js';

export type OpenedImage =
  | { readonly kind: 'files'; readonly fs: VolumeFileSystem; readonly volume: FileVolume; readonly fsName: string }
  | { readonly kind: 'unreadable'; readonly fsName: string; readonly why: string };

/** The volume inside a partition image's `.raw`. */
export async function openRawVolume(raw: string): Promise<FileVolume> {
  const { size } = await stat(raw);
  let head: Buffer | undefined;
  if (mayHaveSyntheticGpt(size)) {
    const whole = await openFileVolume(raw, 0, size);
    head = await whole.read(0, RAW_HEAD_BYTES).finally(() => whole.close());
  }
  const length: Bytes = volumeLength(raw, size, head);
  return openFileVolume(raw, RAW_VOLUME_OFFSET, length);
}

/** The filesystem an image's volume holds, and whether its files can be browsed (for `inspect`). */
export async function imageFileSystem(raw: string): Promise<{ name: string; browsable: boolean }> {
  const volume = await openRawVolume(raw);
  try {
    const d = await detectVolume(volume);
    return { name: d.name, browsable: d.kind === 'readable' };
  } finally {
    await volume.close();
  }
}

/** A drive letter, for the NTFS reader's links into the same volume; SYSVOL and ESP images have none. */
const driveLetter = (letter: string): string | undefined => (/^[A-Za-z]$/.test(letter) ? letter.toUpperCase() : undefined);

/** The files of the volume in `raw` (UrBackup's image `letter`), or why they cannot be read. */
export async function openImageFiles(raw: string, letter: string): Promise<OpenedImage> {
  const volume = await openRawVolume(raw);
  try {
    const d = await detectVolume(volume);
    if (d.kind === 'unreadable') {
      await volume.close();
      return { kind: 'unreadable', fsName: d.name, why: d.why };
    }
    const l = driveLetter(letter);
    return { kind: 'files', fs: await d.open(volume, l ? { letter: l } : {}), volume, fsName: d.name };
  } catch (e) {
    await volume.close();
    if (e instanceof CorruptVolumeError) return { kind: 'unreadable', fsName: 'damaged', why: e.message };
    throw e;
  }
}

/** The one file an image folder shows when its files cannot be read: its name and its text (CRLF, for Notepad). */
export function unreadableNote(opened: Extract<OpenedImage, { kind: 'unreadable' }>, diskFile: string): { name: string; text: Buffer } {
  const lines = [
    `The files of this backup cannot be shown here.`,
    ``,
    `Filesystem: ${opened.fsName}`,
    `Why: ${opened.why}`,
    ``,
    `Attach the disk file ${diskFile} in the folder above instead`,
    `(Windows: Disk Management > Action > Attach VHD, read-only; or diskpart: attach vdisk readonly).`,
  ];
  return { name: `CANNOT BROWSE - ${opened.fsName.toUpperCase()}.txt`, text: Buffer.from(lines.join('\r\n') + '\r\n') };
}
