// A listing shows each container file's size without building its layout (a VHDX BAT is up to
// 16 MiB): the size from geometry must be the layout's size, for every disk size and sector size.
import test from 'ava';
import fc from 'fast-check';
import { VHD_FOOTER_SIZE, vhdLayout } from '../src/container/vhd.js';
import { fixedVhdxSize, vhdxLayout } from '../src/container/vhdx.js';
import type { DiskImage } from '../src/container/disk-image.js';

const disk = (size: number, sectorSize: 512 | 4096): DiskImage => ({
  layout: { size, segments: [{ kind: 'zero', start: 0, length: size }] },
  sectorSize,
  id: Buffer.alloc(16, 7),
  timestamp: new Date(0),
});

test('fixedVhdxSize equals the size of the VHDX layout; a VHD is the disk plus its footer', (t) => {
  fc.assert(
    fc.property(fc.constantFrom<512 | 4096>(512, 4096), fc.integer({ min: 1, max: 2 ** 30 }), (sectorSize, sectors) => {
      const size = sectors * sectorSize;
      if (size > 64 * 2 ** 40) return;
      t.is(fixedVhdxSize(size, sectorSize), vhdxLayout(disk(size, sectorSize)).size);
      if (sectorSize === 512 && size <= 0xff000000 * 512) t.is(size + VHD_FOOTER_SIZE, vhdLayout(disk(size, 512)).size);
    }),
    { seed: 14, numRuns: 300 },
  );
});
