// CRC-32C (Castagnoli), the checksum of VHDX headers and region tables (MS-VHDX §2.2.2, §2.2.3; docs/vhd-vhdx.md §2.3).

/** Reflected form of the Castagnoli polynomial 0x1EDC6F41. */
const POLY_REFLECTED = 0x82f63b78;

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY_REFLECTED : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32C with init and final XOR 0xFFFFFFFF (iSCSI/SSE4.2 flavour); "123456789" gives 0xE3069283. */
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
