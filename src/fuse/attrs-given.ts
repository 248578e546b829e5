// Which inodes' attributes the kernel holds fresh, so that a READDIRPLUS can leave them out
// (docs/fuse-protocol.md §5, READDIRPLUS).

/** A READDIRPLUS leaves out attributes the kernel was given less than this part of their validity ago. */
const HELD_FRACTION = 0.9;

/**
 * When the kernel was last given each inode's attributes (LOOKUP, GETATTR, READDIRPLUS), until
 * it forgets the inode (FORGET: evicted) or they are invalidated. Wrong only ever costs a LOOKUP
 * (node id 0 in a READDIRPLUS entry means "look it up when needed").
 */
export class AttrsGiven {
  private readonly at = new Map<number, number>();

  constructor(private readonly attrSeconds: number) {}

  given(ino: number): void {
    this.at.set(ino, Date.now());
  }

  forget(ino: number): void {
    this.at.delete(ino);
  }

  /** For one READDIRPLUS reply: whether the kernel holds an inode's attributes fresh; if not, they count as given now. */
  heldTest(): (ino: number) => boolean {
    const now = Date.now();
    const fresh = now - this.attrSeconds * 1000 * HELD_FRACTION;
    return (ino) => {
      if ((this.at.get(ino) ?? 0) > fresh) return true;
      this.at.set(ino, now);
      return false;
    };
  }
}
