package main

// nginxConfig is the nginx peer's whole configuration. The %s verbs are,
// in order: the prefix folder (pid file, logs, temp folders), the listen
// port and the folder that /files/ serves.
const nginxConfig = `# Written by the storage-proxy benchmark harness for one run.
user root;
worker_processes 2;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
worker_rlimit_nofile 16384;

events {
    worker_connections 8192;
}

http {
    sendfile on;
    tcp_nopush on;
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    default_type application/octet-stream;
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;

    server {
        listen 127.0.0.1:%[2]d;
        location /files/ {
            alias %[3]s/;
        }
    }
}
`

// aiohttpServer is the upstream Python proxy's data path on aiohttp:
// web.FileResponse for downloads, 256 KiB reads of the request body
// appended to the file through a thread for uploads, and a ZIP stream of
// a folder. Upstream 24.09 compresses ZIP entries with DEFLATE; this peer
// stores them, so that it does the same work as the Go servers.
// Arguments: root folder, upload folder, port.
const aiohttpServer = `# Written by the storage-proxy benchmark harness for one run.
import asyncio
import os
import sys
import zipfile

from aiohttp import web

ROOT, UPLOAD_DIR, PORT = sys.argv[1], sys.argv[2], int(sys.argv[3])
CHUNK = 256 * 1024


async def download(request):
    path = os.path.join(ROOT, request.match_info["path"])
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream"})


async def upload(request):
    path = os.path.join(UPLOAD_DIR, os.path.basename(request.match_info["name"]))
    loop = asyncio.get_running_loop()
    f = await loop.run_in_executor(None, open, path, "ab")
    try:
        while not request.content.at_eof():
            chunk = await request.content.read(CHUNK)
            if chunk:
                await loop.run_in_executor(None, f.write, chunk)
    finally:
        await loop.run_in_executor(None, f.close)
    return web.Response(status=201)


class Sink:
    """Collects what zipfile writes until the handler sends it."""

    def __init__(self):
        self.parts = []

    def write(self, data):
        self.parts.append(bytes(data))
        return len(data)

    def flush(self):
        pass

    def take(self):
        data = b"".join(self.parts)
        self.parts = []
        return data


async def tree(request):
    base = os.path.join(ROOT, request.match_info["path"])
    response = web.StreamResponse(headers={"Content-Type": "application/zip"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    sink = Sink()
    archive = zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True)
    for folder, subfolders, names in os.walk(base):
        subfolders.sort()
        for name in sorted(names):
            path = os.path.join(folder, name)
            with open(path, "rb") as src, archive.open(os.path.relpath(path, base), "w", force_zip64=True) as dst:
                while True:
                    chunk = await loop.run_in_executor(None, src.read, CHUNK)
                    if not chunk:
                        break
                    dst.write(chunk)
                    await response.write(sink.take())
            await response.write(sink.take())
    archive.close()
    await response.write(sink.take())
    await response.write_eof()
    return response


app = web.Application(client_max_size=0)
app.router.add_get("/files/{path:.*}", download)
app.router.add_put("/upload/{name}", upload)
app.router.add_get("/tree/{path:.*}", tree)
web.run_app(app, host="127.0.0.1", port=PORT, access_log=None, print=None)
`

// tusNodeServer is @tus/server with @tus/file-store on node's http
// server. Arguments: port, upload folder.
const tusNodeServer = `// Written by the storage-proxy benchmark harness for one run.
import { Server } from "@tus/server";
import { FileStore } from "@tus/file-store";

const [port, directory] = process.argv.slice(2);
const server = new Server({ path: "/files", datastore: new FileStore({ directory }) });
server.listen(Number(port), "127.0.0.1");
`
