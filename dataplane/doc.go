// Package dataplane serves the client-facing API: GET/HEAD /download (with
// sendfile, ranges, conditional requests and ZIP archives) and the tus 1.0.0
// upload endpoint, on fasthttp, in each worker process.
//
// It imports control/config, control/logging, control/vfid, control/beneath,
// control/token, control/volume and uring. It must never import the manager
// API (control/manager), the supervisor or etcd: a worker moves bytes for
// sessions that the control plane minted, and keeps working when etcd is down.
package dataplane
