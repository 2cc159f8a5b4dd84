// Package config loads storage-proxy.toml, the config file of the upstream
// Backend.AI storage proxy, with its keys, value grammars and defaults.
//
// Load reads one file, applies the BACKEND_* environment overrides to the
// decoded TOML, then checks every table in one pass and returns a
// *ValidationError that names each bad key with its value and the fix.
// [storage-proxy], [api], [api.client], [api.manager] and each
// [volume.NAME] reject unknown keys. The other tables tolerate them and
// Config.Unknown lists them. Keys that only the Python implementation uses
// are accepted and listed in Config.Ignored.
//
// Relative paths are resolved against the directory of the config file, as
// upstream does by changing into that directory. This package never changes
// the working directory, creates no files and starts nothing. It only reads
// the file system, the user and group databases and the host name.
//
// Differences from upstream 24.09:
//   - A group name is looked up in the group database. Upstream takes the
//     primary group of the user with that name.
//   - Negative sizes and durations, sizes above 8 EiB and durations above
//     292 years are rejected.
//   - Volume backends are checked at load time, and only "vfs" is supported.
//   - The "graylog" log driver and logstash protocols other than "tcp" are
//     rejected as not supported by this build.
//   - SSL certificate and key files are checked at load time.
package config
