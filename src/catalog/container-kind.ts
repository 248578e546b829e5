// The four kinds of container file a backup can be shown as, their names, sizes and layouts
// (README "Which file to pick"). Fixed kinds hold every block; dynamic kinds only the blocks
// that hold data, from the backing files' data maps.
import type { Bytes } from '../base/units.js';
import { type PresentBlocks, presentBlocks } from '../disk/present-blocks.js';
import type { Layout, SourceFile } from '../disk/layout.js';
import { canBeVhd, VHD_FOOTER_SIZE, vhdLayout } from '../container/vhd.js';
import { DYNAMIC_VHD_BLOCK_SIZE, dynamicVhdLayout, dynamicVhdSize } from '../container/vhd-dynamic.js';
import { canBeVhdx, DYNAMIC_VHDX_BLOCK_SIZE, dynamicVhdxLayout, dynamicVhdxSize, fixedVhdxSize, vhdxLayout } from '../container/vhdx.js';
import { ContainerError } from '../container/disk-image.js';
import { sourceData } from '../io/source-data.js';
import { rawBitmapPath } from '../urbackup/raw-bitmap.js';
import { type BackupDisk, diskImage } from './backup-disk.js';

/** `vhd`: fixed VHD; `vhdx`: dynamic VHDX; `vhd-dynamic`: dynamic VHD; `vhdx-fixed`: fixed VHDX. */
export type ContainerKind = 'vhd' | 'vhdx' | 'vhd-dynamic' | 'vhdx-fixed';
export const CONTAINER_KINDS: readonly ContainerKind[] = ['vhd', 'vhdx', 'vhd-dynamic', 'vhdx-fixed'];
/** What `serve` shows unless told otherwise. */
export const DEFAULT_KINDS: readonly ContainerKind[] = ['vhd', 'vhdx'];

const SUFFIX: Record<ContainerKind, string> = { vhd: '.vhd', vhdx: '.vhdx', 'vhd-dynamic': '-dynamic.vhd', 'vhdx-fixed': '-fixed.vhdx' };

/** The file name of a backup's disk in this kind, e.g. 230520-0143_Image_C-dynamic.vhd. */
export function kindFileName(folder: string, kind: ContainerKind): string {
  return `${folder}${SUFFIX[kind]}`;
}

/** Whether the kind is a VHD (512-byte sectors, at most 2040 GiB). */
export function isVhdKind(kind: ContainerKind): boolean {
  return kind === 'vhd' || kind === 'vhd-dynamic';
}

/** The block size of a dynamic kind, undefined for a fixed one. */
function dynamicBlockSize(kind: ContainerKind): Bytes | undefined {
  return kind === 'vhdx' ? DYNAMIC_VHDX_BLOCK_SIZE : kind === 'vhd-dynamic' ? DYNAMIC_VHD_BLOCK_SIZE : undefined;
}

/** Why a disk cannot be shown in this kind, or null when it can. */
export function kindRefusal(b: BackupDisk, kind: ContainerKind): string | null {
  return isVhdKind(kind) ? canBeVhd({ size: b.disk.layout.size, sectorSize: b.disk.sectorSize }) : null;
}

// Present blocks per disk and block size, kept as long as the disk (itself cached while its
// images are unchanged); the data maps below them are cached by each `.raw`'s identity.
const presentCache = new WeakMap<BackupDisk, Map<Bytes, PresentBlocks>>();

function dataMapOf(b: BackupDisk): (s: SourceFile) => ReturnType<typeof sourceData>['map'] | undefined {
  return (s) => {
    const identified = b.sources.find((x) => x.path === s.path);
    return identified ? sourceData(identified.path, identified.identity).map : undefined;
  };
}

/** Why a `.raw.bitmap` of the disk was not used (SEEK_DATA decided instead), one line per file. */
export function bitmapNotes(b: BackupDisk): string[] {
  return b.sources.flatMap((s) => {
    const problem = sourceData(s.path, s.identity).bitmapProblem;
    return problem ? [`${rawBitmapPath(s.path)}: not used (${problem}); the dynamic kinds store what SEEK_DATA reports`] : [];
  });
}

/** The blocks a dynamic kind stores, undefined for a fixed kind. Throws an Error naming a file it cannot map. */
export function kindPresentBlocks(b: BackupDisk, kind: ContainerKind): PresentBlocks | undefined {
  const blockSize = dynamicBlockSize(kind);
  if (blockSize === undefined) return undefined;
  let m = presentCache.get(b);
  if (!m) presentCache.set(b, (m = new Map()));
  let p = m.get(blockSize);
  if (!p) m.set(blockSize, (p = presentBlocks(b.disk.layout, blockSize, dataMapOf(b))));
  return p;
}

/** Whether the kind's file size depends on which blocks hold data (the `.raw` files' data maps). */
export function sizeNeedsDataMaps(kind: ContainerKind): boolean {
  return dynamicBlockSize(kind) !== undefined;
}

/** Throws ContainerError for a disk the kind cannot hold; reads nothing. */
export function checkKind(b: BackupDisk, kind: ContainerKind): void {
  const refusal = isVhdKind(kind) ? kindRefusal(b, kind) : canBeVhdx({ size: b.disk.layout.size, sectorSize: b.disk.sectorSize });
  if (refusal) throw new ContainerError(`cannot make a ${isVhdKind(kind) ? 'VHD' : 'VHDX'}: ${refusal}`);
}

/**
 * The container's file size, without building its layout: from the disk's geometry for the
 * fixed kinds (a listing of 10 000 backups built every BAT before), from the present blocks for
 * the dynamic ones, which maps the `.raw` files' data (sizeNeedsDataMaps). Throws
 * ContainerError for a disk the kind cannot hold.
 */
export function kindSize(b: BackupDisk, kind: ContainerKind): Bytes {
  checkKind(b, kind);
  const { size } = b.disk.layout;
  switch (kind) {
    case 'vhd':
      return size + VHD_FOOTER_SIZE;
    case 'vhdx-fixed':
      return fixedVhdxSize(size, b.disk.sectorSize);
    case 'vhdx':
      return dynamicVhdxSize(size, b.disk.sectorSize, presentCount(b, kind));
    case 'vhd-dynamic':
      return dynamicVhdSize(size, presentCount(b, kind));
  }
}

/** The largest file the kind makes of this disk: a dynamic kind's with every block stored, as a writer may make it. */
export function kindFullSize(b: BackupDisk, kind: ContainerKind): Bytes {
  const blockSize = dynamicBlockSize(kind);
  if (blockSize === undefined) return kindSize(b, kind);
  const blocks = Math.ceil(b.disk.layout.size / blockSize);
  return kind === 'vhdx' ? dynamicVhdxSize(b.disk.layout.size, b.disk.sectorSize, blocks) : dynamicVhdSize(b.disk.layout.size, blocks);
}

/** How many blocks a dynamic kind stores: its present blocks are kept only once built for a layout (a stat needs only the count). */
function presentCount(b: BackupDisk, kind: ContainerKind): number {
  return (presentCache.get(b)?.get(dynamicBlockSize(kind)!) ?? presentBlocks(b.disk.layout, dynamicBlockSize(kind)!, dataMapOf(b))).count;
}

/** The container file's layout. */
export function kindLayout(b: BackupDisk, kind: ContainerKind): Layout {
  const disk = diskImage(b);
  switch (kind) {
    case 'vhd':
      return vhdLayout(disk);
    case 'vhdx-fixed':
      return vhdxLayout(disk);
    case 'vhdx':
      return dynamicVhdxLayout(disk, kindPresentBlocks(b, kind)!);
    case 'vhd-dynamic':
      return dynamicVhdLayout(disk, kindPresentBlocks(b, kind)!);
  }
}
