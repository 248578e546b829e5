// $REPARSE_POINT: junctions and symbolic links, and which reparse tags leave a file's data alone
// (docs/filesystems-ntfs.md §10).
import { check } from './format-error.js';

/** [MS-FSCC] §2.1.2.1 reparse tags. */
export const IO_REPARSE_TAG_MOUNT_POINT = 0xa0000003;
export const IO_REPARSE_TAG_SYMLINK = 0xa000000c;
export const IO_REPARSE_TAG_WOF = 0x80000017;
/** [MS-FSCC] §2.1.2.4: the substitute name is relative to the link's folder. */
const SYMLINK_FLAG_RELATIVE = 0x1;
const HEADER = 8;

export function reparseTag(b: Buffer): number {
  check(b.length >= HEADER, `reparse point of ${b.length} bytes`);
  return b.readUInt32LE(0);
}

/** Where a link points, as the reparse point says it. */
export type LinkTarget =
  /** Components relative to the link's folder ('..' allowed). */
  | { readonly kind: 'relative'; readonly parts: readonly string[] }
  /** Components from the root of a drive letter's volume (`\??\C:\x`). */
  | { readonly kind: 'drive'; readonly letter: string; readonly parts: readonly string[] }
  /** Another volume, a UNC path, a volume GUID path: not inside this volume. */
  | { readonly kind: 'outside' };

const DRIVE_PATH = /^(?:\\\?\?\\|\\\\\?\\)?([A-Za-z]):(?:\\(.*))?$/;

function split(path: string): string[] {
  return path.split('\\').filter((p) => p !== '' && p !== '.');
}

/** The substitute name of a junction or symbolic link, parsed. */
function classify(substitute: string, relative: boolean): LinkTarget {
  if (relative) return substitute.startsWith('\\') ? { kind: 'outside' } : { kind: 'relative', parts: split(substitute) };
  const m = DRIVE_PATH.exec(substitute);
  return m ? { kind: 'drive', letter: m[1]!.toUpperCase(), parts: split(m[2] ?? '') } : { kind: 'outside' };
}

/** [MS-FSCC] §2.1.2.2/§2.1.2.4: the link target of a junction or symlink; undefined for other tags. */
export function parseLinkTarget(b: Buffer): LinkTarget | undefined {
  const tag = reparseTag(b);
  if (tag !== IO_REPARSE_TAG_MOUNT_POINT && tag !== IO_REPARSE_TAG_SYMLINK) return undefined;
  const dataLength = b.readUInt16LE(4);
  const pathBuffer = HEADER + 8 + (tag === IO_REPARSE_TAG_SYMLINK ? 4 : 0);
  check(dataLength + HEADER <= b.length && pathBuffer <= HEADER + dataLength, `reparse data of ${dataLength} bytes`);
  const offset = b.readUInt16LE(HEADER);
  const length = b.readUInt16LE(HEADER + 2);
  check(pathBuffer + offset + length <= HEADER + dataLength && length % 2 === 0, 'reparse substitute name runs past its data');
  const substitute = b.toString('utf16le', pathBuffer + offset, pathBuffer + offset + length);
  const relative = tag === IO_REPARSE_TAG_SYMLINK && (b.readUInt32LE(HEADER + 8) & SYMLINK_FLAG_RELATIVE) !== 0;
  return classify(substitute, relative);
}

/**
 * A `/`-separated path from the folder at `folderParts` (components from the root of the volume
 * of drive `letter`) to `target`; undefined when it would climb above the root or point outside
 * the volume.
 */
export function relativeLinkPath(target: LinkTarget, letter: string, folderParts: readonly string[], sameName: (a: string, b: string) => boolean): string | undefined {
  if (target.kind === 'outside' || (target.kind === 'drive' && target.letter !== letter.toUpperCase())) return undefined;
  if (target.kind === 'relative') {
    let depth = folderParts.length;
    for (const p of target.parts) {
      depth = p === '..' ? depth - 1 : depth + 1;
      if (depth < 0) return undefined;
    }
    if (target.parts.length === 0) return undefined;
    return target.parts.join('/');
  }
  if (target.parts.includes('..')) return undefined;
  let common = 0;
  while (common < folderParts.length && common < target.parts.length && sameName(folderParts[common]!, target.parts[common]!)) common++;
  const up = folderParts.length - common;
  const parts = [...Array<string>(up).fill('..'), ...target.parts.slice(common)];
  return parts.length === 0 ? '.' : parts.join('/');
}
