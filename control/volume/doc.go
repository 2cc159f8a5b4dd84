// Package volume is the storage proxy's volume abstraction and its vfs
// backend: one Volume per [volume.NAME] table of the config, serving quota
// scopes, vfolders and the files inside them.
//
// Every method takes ids and relative paths exactly as the manager sent
// them and resolves each path beneath its vfolder with package beneath, so
// no spelling of a path and no symlink reaches a file outside the vfolder.
// Failures are typed: an *Error wrapping one of the Err* kinds, or an
// *FSError for a file system failure on a path inside the vfolder. Their
// messages name paths only relative to the vfolder, so the HTTP edge can
// send them to clients as they are.
//
// Tree walks (usage, used bytes, clone, delete) read each directory with
// getdents(2) and run the per-entry statx(2) and unlinkat(2) calls in
// batches through a TreeIO, which an io_uring engine can implement.
//
// Dependencies: the standard library, golang.org/x/sys/unix and the
// packages vfid and beneath of this module. This package must never import
// the manager API, the data plane, the supervisor or etcd, because the data
// plane's worker processes import it too.
package volume
