// 8.3 short names (docs/filesystems-ext4-fat.md §10, after Microsoft's FAT32 File System
// Specification 1.03, §6.1 and §7): 11 bytes in the OEM code page, here code page 437.

/** Code page 437, bytes 0x80-0xFF. */
const CP437_HIGH =
  'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0';
/** DIR_Name[0] 0x05 stands for 0xE5, which otherwise marks a free entry. */
const KANJI_E5 = 0x05;
/** DIR_NTRes bits (Windows NT and later): base name, extension in lower case. */
const NT_LOWER_BASE = 0x08;
const NT_LOWER_EXT = 0x10;

function oem(bytes: Buffer): string {
  let s = '';
  for (const b of bytes) s += b < 0x80 ? String.fromCharCode(b) : CP437_HIGH[b - 0x80]!;
  return s.trimEnd();
}

/** "NAME.EXT" from the 11 DIR_Name bytes and the DIR_NTRes case bits. */
export function shortName(entry: Buffer, ntRes: number): string {
  const raw = Buffer.from(entry.subarray(0, 11));
  if (raw[0] === KANJI_E5) raw[0] = 0xe5;
  let base = oem(raw.subarray(0, 8));
  let ext = oem(raw.subarray(8, 11));
  if (ntRes & NT_LOWER_BASE) base = base.toLowerCase();
  if (ntRes & NT_LOWER_EXT) ext = ext.toLowerCase();
  return ext ? `${base}.${ext}` : base;
}

/** The checksum of the 11 DIR_Name bytes that every long-name entry of the file repeats (§7). */
export function shortNameChecksum(entry: Buffer): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = (((sum & 1) << 7) + (sum >> 1) + entry[i]!) & 0xff;
  return sum;
}
