import { hash } from 'node:crypto';

/** Matches a GUID written as text, e.g. CAA16737-FA36-4D43-B3B6-33F0AA44E76B. */
const GUID_TEXT = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i;

/**
 * The 16 bytes of a GUID in Microsoft binary form, as VHDX stores them (docs/vhd-vhdx.md §2.4):
 * Data1 u32 LE, Data2 u16 LE, Data3 u16 LE, Data4 as written.
 */
export function msGuid(text: string): Buffer {
  const m = GUID_TEXT.exec(text);
  if (!m) throw new Error(`not a GUID: '${text}'`);
  const out = Buffer.alloc(16);
  out.writeUInt32LE(parseInt(m[1]!, 16), 0);
  out.writeUInt16LE(parseInt(m[2]!, 16), 4);
  out.writeUInt16LE(parseInt(m[3]!, 16), 6);
  Buffer.from(m[4]! + m[5]!, 'hex').copy(out, 8);
  return out;
}

/**
 * A 16-byte id that depends only on `name`: SHA-256 of it, cut to 16 bytes, with the RFC 4122
 * variant bits and version 8 ("custom") set so that tools show it as a well-formed UUID.
 * Used for ids that must survive restarts (docs/admin.md §3).
 */
export function nameBasedId(name: string): Buffer {
  const id = hash('sha256', name, 'buffer').subarray(0, 16);
  id[6] = (id[6]! & 0x0f) | 0x80;
  id[8] = (id[8]! & 0x3f) | 0x80;
  return Buffer.from(id);
}
