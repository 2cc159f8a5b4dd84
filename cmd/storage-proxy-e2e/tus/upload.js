#!/usr/bin/env node
// Uploads files to the storage proxy with tus-js-client, configured the way
// the Backend.AI web UI configures it: `uploadUrl` and `endpoint` both set to
// `<client_api>/upload?token=<JWT>`, so the client starts with HEAD and then
// sends PATCH requests of at most chunkSize bytes.
//
// Input (stdin, one JSON object):
//   {"concurrency": 4, "chunkSize": 8388608, "retryDelays": [0, 1000, 3000],
//    "files": [{"path": "/abs/file", "uploadUrl": "http://...", "size": 123,
//               "trace": false}, ...]}
// Output (stdout, one JSON line per file, in completion order):
//   {"path", "ok", "error", "bytes", "retries", "requests"}
// where "retries" lists the errors that made the client retry and
// "requests" (only for files with "trace": true) lists every request with
// its method, the Upload-Offset it sent, the status and the Upload-Offset of
// the response. The exit status is 0 only if every upload succeeded.

'use strict'

const fs = require('fs')
const path = require('path')
const tus = require('tus-js-client')

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = []
    process.stdin.on('data', (c) => chunks.push(c))
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    process.stdin.on('error', reject)
  })
}

// Mirrors tus-js-client's own default retry rule (retry unless the status
// is a 4xx other than 409 and 423), so wrapping it to record the error
// changes nothing about when the client retries.
function defaultShouldRetry(err) {
  const status = err.originalResponse ? err.originalResponse.getStatus() : 0
  const clientError = status >= 400 && status < 500
  return !clientError || status === 409 || status === 423
}

function uploadOne(file, options) {
  return new Promise((resolve) => {
    const result = { path: file.path, ok: false, error: null, bytes: 0, retries: [] }
    if (file.trace) result.requests = []

    const upload = new tus.Upload(fs.createReadStream(file.path), {
      uploadUrl: file.uploadUrl,
      endpoint: file.uploadUrl,
      uploadSize: file.size,
      chunkSize: options.chunkSize,
      retryDelays: options.retryDelays,
      storeFingerprintForResuming: false,
      metadata: { filename: path.basename(file.path), filetype: 'application/octet-stream' },
      onBeforeRequest(req) {
        if (!file.trace) return
        result.requests.push({
          method: req.getMethod(),
          uploadOffset: req.getHeader('Upload-Offset') ?? null,
          status: null,
          offset: null,
        })
      },
      onAfterResponse(req, res) {
        if (!file.trace) return
        const last = result.requests[result.requests.length - 1]
        last.status = res.getStatus()
        last.offset = res.getHeader('Upload-Offset') ?? null
      },
      onShouldRetry(err) {
        const status = err.originalResponse ? err.originalResponse.getStatus() : null
        result.retries.push({ status, message: String(err.message).split('\n')[0] })
        return defaultShouldRetry(err)
      },
      onProgress(bytesSent) {
        result.bytes = Math.max(result.bytes, bytesSent)
      },
      onSuccess() {
        result.ok = true
        result.bytes = file.size
        resolve(result)
      },
      onError(err) {
        result.error = String(err.message)
        resolve(result)
      },
    })
    upload.start()
  })
}

async function main() {
  const input = JSON.parse(await readStdin())
  const options = {
    chunkSize: input.chunkSize,
    retryDelays: input.retryDelays,
  }
  const queue = input.files.slice()
  let failed = 0

  async function worker() {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
      const result = await uploadOne(file, options)
      if (!result.ok) failed++
      process.stdout.write(JSON.stringify(result) + '\n')
    }
  }

  const workers = []
  for (let i = 0; i < input.concurrency; i++) workers.push(worker())
  await Promise.all(workers)
  if (failed > 0) {
    process.stderr.write(`tus upload: ${failed} of ${input.files.length} uploads failed\n`)
    process.exitCode = 1
  }
}

main().catch((err) => {
  process.stderr.write(`tus upload: ${err.stack || err}\n`)
  process.exitCode = 2
})
