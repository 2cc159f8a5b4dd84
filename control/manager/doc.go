// Package manager serves the manager-facing HTTP API of the storage proxy.
// It has the 28 routes of upstream Backend.AI Storage Proxy 24.09, through
// which the manager creates quota scopes and vfolders, lists and changes
// their files and gets upload and download tokens. It adds GET /health,
// /livez and /readyz for deployments.
//
// New returns an http.Handler. Every call except /, /status and the health
// routes must carry the manager secret in X-BackendAI-Storage-Auth-Token,
// checked before routing. Parameters come as a JSON object in the body of
// every method and are checked against a strict schema per route.
// Handlers and volumes return typed errors, and one function at the edge
// turns each into its status and body. Raw causes go to the log only, and
// no body contains an absolute server path except the vfolder path that
// GET /folder/mount returns and the volume paths of GET /volumes.
//
// Dependencies: the standard library and the packages vfid, beneath, token
// and volume of this module. It must never import the data plane, the
// supervisor or etcd. The caller passes their readiness checks in
// Options.Ready instead.
package manager
