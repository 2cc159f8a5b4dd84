package supervisor

import (
	"fmt"
	"os/user"
	"strconv"
	"syscall"
)

// DropPrivileges switches a root process to uid and gid, with the
// supplementary groups that list the user's name as a member, as upstream
// does. It does nothing unless the effective uid is 0. Go applies setuid and
// setgid to every thread of the process.
func DropPrivileges(uid, gid int) error {
	if syscall.Geteuid() != 0 || (uid == 0 && gid == 0) {
		return nil
	}
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		return fmt.Errorf("drop privileges: uid %d is not in the password database: %w", uid, err)
	}
	groups := []int{gid}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if n, err := strconv.Atoi(id); err == nil && n != gid {
				groups = append(groups, n)
			}
		}
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("drop privileges: setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("drop privileges: setgid %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("drop privileges: setuid %d: %w", uid, err)
	}
	return nil
}
