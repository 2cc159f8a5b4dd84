// Package control is the control plane of the storage proxy: everything that
// is not the movement of file bytes over the client API.
//
// Its sub-packages are:
//
//   - config: loads and validates storage-proxy.toml.
//   - logging: the slog drivers (console, file, logstash) and the relay that
//     carries worker processes' records to the supervisor.
//   - vfid: quota scope and vfolder ids and the vfs on-disk layout.
//   - beneath: resolves relative paths inside a folder without escaping it.
//   - token: mints and verifies the client API's session JWTs.
//   - volume: the volume abstraction and the vfs backend.
//   - manager: the manager-facing HTTP API.
//   - supervisor: the process model (supervisor, workers, signals, pid file).
//   - etcd: the etcd client under /sorna/<namespace>/ and the embedded member.
//
// The data plane (package dataplane) may import config, logging, vfid,
// beneath, token and volume. Nothing under control imports dataplane, and
// only cmd wires the two together.
package control
