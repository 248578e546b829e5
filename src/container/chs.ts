import type { Bytes } from '../base/units.js';

export interface ChsGeometry {
  readonly cylinders: number;
  readonly heads: number;
  readonly sectorsPerTrack: number;
}

/** Sectors of a CHS geometry at its maximum, 65535/16/255 (VHD spec, "Appendix: CHS Calculation"; docs/vhd-vhdx.md §1.3 step 1). */
const MAX_CHS_SECTORS = 65535 * 16 * 255;

/**
 * The VHD spec's CHS geometry ("Appendix: CHS Calculation"; docs/vhd-vhdx.md §1.3) for `size` bytes. It rounds
 * down, so C·H·S can cover less than the disk; readers that matter use Current Size (docs/vhd-vhdx.md §1.4).
 */
export function chsGeometry(size: Bytes): ChsGeometry {
  const total = Math.min(Math.floor(size / 512), MAX_CHS_SECTORS);
  let sectorsPerTrack: number;
  let heads: number;
  let cylTimesHeads: number;
  if (total >= 65535 * 16 * 63) {
    sectorsPerTrack = 255;
    heads = 16;
    cylTimesHeads = Math.floor(total / sectorsPerTrack);
  } else {
    sectorsPerTrack = 17;
    cylTimesHeads = Math.floor(total / sectorsPerTrack);
    heads = Math.max(4, Math.ceil(cylTimesHeads / 1024));
    if (cylTimesHeads >= heads * 1024 || heads > 16) {
      sectorsPerTrack = 31;
      heads = 16;
      cylTimesHeads = Math.floor(total / sectorsPerTrack);
    }
    if (cylTimesHeads >= heads * 1024) {
      sectorsPerTrack = 63;
      heads = 16;
      cylTimesHeads = Math.floor(total / sectorsPerTrack);
    }
  }
  return { cylinders: Math.floor(cylTimesHeads / heads), heads, sectorsPerTrack };
}
