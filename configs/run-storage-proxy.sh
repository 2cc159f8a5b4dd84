#! /bin/bash
# Runner script for the systemd unit, as in the deployment guide, for the Go
# binary: no Python virtual environment or pyenv to activate.
set -e

if [ -z "$HOME" ]; then
	export HOME="/home/bai"
fi

if [ "$#" -eq 0 ]; then
	# The config is found as upstream finds it ($BACKEND_CONFIG_FILE,
	# ./storage-proxy.toml, ~/.config/backend.ai/storage-proxy.toml,
	# /etc/backend.ai/storage-proxy.toml).
	exec "$HOME/bin/storage-proxy"
else
	exec "$@"
fi
