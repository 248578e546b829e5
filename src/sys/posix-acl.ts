// Whether a file or folder carries a POSIX access ACL (acl(5)). Then its mode's group bits are
// only the ACL's mask and named users or groups may be granted or refused apart from them.
import { getxattr } from './libc.js';

/** acl(5): the extended attribute holding a file's access ACL (absent: the mode is the whole story). */
const ACCESS_ACL = 'system.posix_acl_access';

/** True when `path` has an access ACL; false when it has none or its filesystem has no xattrs. */
export function hasAccessAcl(path: string): boolean {
  return getxattr(path, ACCESS_ACL, null, 0) >= 0;
}
