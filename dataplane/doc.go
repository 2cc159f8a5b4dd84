// Package dataplane serves the client-facing API: GET/HEAD /download (with
// sendfile, ranges, conditional requests and ZIP archives) and the tus 1.0.0
// upload endpoint, on fasthttp, in each worker process.
//
// Lifecycle: New validates Options; Serve runs on one or more listeners;
// Shutdown stops accepting, lets transfers in flight finish until its
// context ends, then stops the rest (uploads flush and unlock) and waits for
// every handler. Sweep, called periodically by the supervisor, removes stale
// upload staging files. docs/client-api.md describes the wire behaviour.
//
// It imports control/vfid, control/beneath, control/token and
// control/metrics, and reaches the io engine of package uring through the
// FileIO interface. It must never import the manager
// API (control/manager), the supervisor or etcd: a worker moves bytes for
// sessions that the control plane minted, and keeps working when etcd is down.
package dataplane
