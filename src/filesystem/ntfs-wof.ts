// The NTFS reader with WOF-compressed files decoded (docs/filesystems-wof.md §1): a file with the
// WOF reparse tag reads its WofCompressedData stream through the wof/ decoders; every other call
// is the NTFS reader's own.
import { IO_REPARSE_TAG_WOF, parseWofReparse, wofFileData } from './wof/wof.js';
import { openNtfs, type NtfsFileSystem, type NtfsOptions } from './ntfs/ntfs-filesystem.js';
import { readFileData } from './file-data-read.js';
import { CorruptVolumeError, type FileData, type FsNode, type Volume, type VolumeFileSystem } from './volume-fs.js';

/** The named $DATA stream that holds a WOF file's chunks (docs/filesystems-wof.md §1). */
const WOF_STREAM = 'WofCompressedData';
/** ReparseTag le32 at the start of a reparse point. */
const REPARSE_TAG_BYTES = 4;

export class NtfsWithWof implements VolumeFileSystem {
  readonly type = 'ntfs' as const;
  constructor(private readonly ntfs: NtfsFileSystem, private readonly volume: Volume) {}

  root = (): Promise<FsNode> => this.ntfs.root();
  list = (dir: FsNode) => this.ntfs.list(dir);
  lookup = (dir: FsNode, name: string) => this.ntfs.lookup(dir, name);
  readlink = (link: FsNode): Promise<string> => this.ntfs.readlink(link);

  async data(file: FsNode): Promise<FileData> {
    const reparse = await this.ntfs.reparseData(file);
    if (!reparse || reparse.length < REPARSE_TAG_BYTES || reparse.readUInt32LE(0) !== IO_REPARSE_TAG_WOF) return this.ntfs.data(file);
    const where = `MFT record ${file.id}`;
    const algorithm = parseWofReparse(reparse, `${this.volume.name}: ${where}`);
    const stream = await this.ntfs.streamData(file, WOF_STREAM);
    if (!stream) throw new CorruptVolumeError(this.volume, `${where}: a WOF file without its ${WOF_STREAM} stream`);
    const size = stream.kind === 'layout' ? stream.layout.size : stream.size;
    const read = (pos: number, length: number) => readFileData(this.volume, stream, pos, length);
    return wofFileData({ size, read }, file.size, algorithm, { volume: this.volume, file: where });
  }
}

/** The NTFS filesystem on `volume`, WOF-compressed files included. */
export async function openNtfsWithWof(volume: Volume, options: NtfsOptions = {}): Promise<VolumeFileSystem> {
  return new NtfsWithWof(await openNtfs(volume, options), volume);
}
