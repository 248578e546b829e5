// The smb.conf share for a synthvhd mount (docs/vhd-vhdx.md §3.2).

export interface ShareOptions {
  readonly name: string;
  readonly path: string;
  /** Samba `valid users`; empty means any authenticated user. */
  readonly validUsers?: string;
  /** The unix group of `serve --group`: added to `valid users` as @group. */
  readonly group?: string;
}

/** The `valid users` value for `o`, or undefined for any authenticated user. */
export function validUsersOf(o: Pick<ShareOptions, 'validUsers' | 'group'>): string | undefined {
  const list = [o.validUsers, o.group && `@${o.group}`].filter(Boolean);
  return list.length > 0 ? list.join(', ') : undefined;
}

/**
 * Settings a share of FUSE-backed VHD files needs, each with its reason: read-write opens
 * (Windows' read-write attach) get private overlays, nothing else is ever written (docs/vhd-vhdx.md §3.2).
 * The shipped samba-conf/smb.conf carries the same lines (a test keeps them in step).
 */
export const SHARE_SETTINGS: readonly (readonly [key: string, value: string, why: string])[] = [
  ['read only', 'no', "a read-write attach opens for writing: the mount keeps each writer's writes in a private overlay, gone at detach (docs/overlays.md); it refuses new files, deletes and renames"],
  ['guest ok', 'no', 'backups are sensitive: authenticated users only'],
  ['browseable', 'yes', ''],
  [
    'store dos attributes',
    'yes',
    'DOS attributes and creation times of the files inside backups come from their user.DOSATTRIB\n   # (read-only, never stored); the disk files have none: nothing marks them SPARSE (Windows refuses sparse VHDs)',
  ],
  ['ea support', 'no', 'no extended attributes on the mount'],
  ['map archive', 'no', 'DOS attributes come from nothing but the mode bits'],
  ['map hidden', 'no', ''],
  ['map system', 'no', ''],
  ['map readonly', 'no', ''],
  ['vfs objects', '', 'no btrfs/streams/acl modules: they could report COMPRESSED or need xattrs'],
  ['kernel oplocks', 'no', 'FUSE has no kernel leases'],
  ['kernel share modes', 'no', ''],
  ['posix locking', 'no', 'with the two above, lets Samba grant durable handles'],
  ['oplocks', 'yes', "safe: a disk's bytes change for nobody but its own writer"],
  ['strict allocate', 'no', 'never fallocate on the FUSE mount'],
  ['strict sync', 'no', 'nothing to flush: an overlay is thrown away at close'],
  ['use sendfile', 'no', ''],
];

export function shareSection(o: ShareOptions): string {
  const lines = [`[${o.name}]`, `   comment = UrBackup image backups as virtual disks (synthvhd)`, `   path = ${o.path}`];
  for (const [k, v, why] of SHARE_SETTINGS) {
    if (why) lines.push(`   # ${why}`);
    lines.push(`   ${k} = ${v}`.trimEnd());
  }
  const validUsers = validUsersOf(o);
  if (validUsers) lines.push(`   # only these may connect; each still reads only the disks the mount lets their unix account read`, `   valid users = ${validUsers}`);
  else lines.push('   # valid users = @backupadmins   (default: any Samba user, who then reads only the disks the mount lets their unix account read)');
  return `${lines.join('\n')}\n`;
}
