// Case-insensitive names as NTFS compares them: each UTF-16 code unit through the volume's
// $UpCase table (docs/filesystems-ntfs.md §12).

/** §12: $UpCase maps each of the 65536 UTF-16 code units. */
export const UPCASE_BYTES = 65536 * 2;

/** A name of ASCII characters only: most names, folded by String#toUpperCase where $UpCase folds ASCII as usual. */
const ASCII = /^[\x00-\x7f]*$/;

/** Whether `map` folds the ASCII range as String#toUpperCase does: a-z to A-Z, the rest to itself. */
function foldsAsciiAsUsual(map: Uint16Array): boolean {
  for (let c = 0; c < 128; c++) if (map[c] !== String.fromCharCode(c).toUpperCase().charCodeAt(0)) return false;
  return true;
}

/** Folds names for comparison: through $UpCase when the volume has a whole one, else String#toUpperCase per code unit. */
export function makeUpcase(table: Buffer | undefined): (name: string) => string {
  if (table === undefined || table.length !== UPCASE_BYTES) return upcaseEach;
  const map = new Uint16Array(65536);
  for (let i = 0; i < 65536; i++) map[i] = table.readUInt16LE(2 * i);
  const asciiAsUsual = foldsAsciiAsUsual(map);
  return (name) => {
    if (asciiAsUsual && ASCII.test(name)) return name.toUpperCase();
    const out = new Uint16Array(name.length);
    for (let i = 0; i < name.length; i++) out[i] = map[name.charCodeAt(i)]!;
    return Buffer.from(out.buffer).toString('utf16le');
  };
}

/** The fallback: one code unit in, one out (a toUpperCase that lengthens, like ß, keeps the unit). */
function upcaseEach(name: string): string {
  let out = '';
  for (let i = 0; i < name.length; i++) {
    const u = name[i]!.toUpperCase();
    out += u.length === 1 ? u : name[i];
  }
  return out;
}
