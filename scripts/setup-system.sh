#!/usr/bin/env bash
# Installs the Debian packages and npm modules synthvhd, its demo and its tests need.
# Idempotent: does nothing when everything is there. Needs root for apt (Debian 12).
set -euo pipefail
cd "$(dirname "$0")/.."

# command (or, for data-only packages, an absolute file path) → Debian package that provides it
declare -A need=(
  [qemu-img]=qemu-utils [vhdiinfo]=libvhdi-utils [sgdisk]=gdisk [sfdisk]=fdisk
  [mkntfs]=ntfs-3g [ntfs-3g]=ntfs-3g [mkfs.btrfs]=btrfs-progs [mkfs.xfs]=xfsprogs
  [mformat]=mtools [mkfs.vfat]=dosfstools [fusermount3]=fuse3 [smbd]=samba
  [smbclient]=smbclient [testparm]=samba-common-bin [losetup]=mount [mkfs.ext4]=e2fsprogs
  [sqlite3]=sqlite3 [zstd]=zstd [fio]=fio [xmount]=xmount [locale-gen]=locales
  [qemu-system-x86_64]=qemu-system-x86 [grub-mkimage]=grub-common
  [/usr/lib/grub/i386-pc/boot.img]=grub-pc-bin [/usr/lib/grub/x86_64-efi/kernel.img]=grub-efi-amd64-bin
  [/usr/share/OVMF/OVMF_CODE_4M.fd]=ovmf [/usr/share/seabios/bios-256k.bin]=seabios
  [setfattr]=attr [pdbedit]=samba [setfacl]=acl [/usr/lib/x86_64-linux-gnu/libwim.so.15]=libwim15
  [/usr/lib/python3/dist-packages/pyfsntfs.cpython-311-x86_64-linux-gnu.so]=python3-libfsntfs
  [/usr/lib/python3/dist-packages/samba/samba3/libsmb_samba_internal.py]=python3-samba [ip]=iproute2
  [dpkg-deb]=dpkg [debootstrap]=debootstrap [lintian]=lintian [busybox]=busybox-static [cpio]=cpio
)
missing=()
for cmd in "${!need[@]}"; do
  [[ $cmd == /* && -e $cmd ]] || command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  if [ "$(id -u)" -ne 0 ]; then
    echo "synthvhd setup: missing Debian packages: $pkgs— run as root or: sudo apt-get install $pkgs" >&2
    exit 1
  fi
  echo "synthvhd setup: installing $pkgs" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Wait for another apt run (a second test suite, unattended-upgrades) instead of failing on its lock.
  lock=(-o DPkg::Lock::Timeout=600)
  apt-get "${lock[@]}" update -qq || { echo "synthvhd setup: apt-get update failed" >&2; exit 1; }
  # shellcheck disable=SC2086
  apt-get "${lock[@]}" install -y -qq --no-install-recommends $pkgs >/dev/null || { echo "synthvhd setup: apt-get install $pkgs failed" >&2; exit 1; }
fi
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || true
# npm ci only when node_modules was not installed from this very lockfile, so a second run
# needs no registry.
stamp=node_modules/.synthvhd-lockfile.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  npm ci --no-audit --no-fund >/dev/null || { echo "synthvhd setup: npm ci failed" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
