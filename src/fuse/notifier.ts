// The three cache invalidations a server sends the kernel when its tree changes
// (docs/fuse-protocol.md §4): one object, handed from the session to whoever changes the tree.
import type { AttrsGiven } from './attrs-given.js';
import { invalEntryNotification, invalInodeNotification } from './protocol.js';
import type { ReplyWriter } from './reply-writer.js';

export interface Notifier {
  /** Drops the kernel's cached attributes of `ino`, not its pages (FUSE_NOTIFY_INVAL_INODE): an inode's bytes never change. */
  invalidateAttributes(ino: number): void;
  /** Drops the kernel's cached attributes and listing of directory `ino` (FUSE_NOTIFY_INVAL_INODE with its pages). */
  invalidateDirectory(ino: number): void;
  /** Drops the kernel's cached lookup of `name` in `parent`, negative ones included (FUSE_NOTIFY_INVAL_ENTRY). */
  invalidateEntry(parent: number, name: string): void;
}

export function newNotifier(out: ReplyWriter, given: AttrsGiven): Notifier {
  return {
    invalidateAttributes(ino) {
      given.forget(ino);
      out.notify(invalInodeNotification(ino));
    },
    invalidateDirectory(ino) {
      given.forget(ino);
      out.notify(invalInodeNotification(ino, true));
    },
    invalidateEntry(parent, name) {
      out.notify(invalEntryNotification(parent, name));
    },
  };
}
