// One real WebTorrent client (the `webtorrent` npm package, on @roamhq/wrtc for
// WebRTC) for the end-to-end test of tracker_ws: run.mjs starts two of them.
//
//   node client.mjs seed PAYLOAD ANNOUNCE_URL TORRENT_OUT
//   node client.mjs download TORRENT_FILE OUT_DIR
//
// Its only way to find peers is the tracker named in the torrent: DHT, local
// service discovery, uTP, NAT port mapping and web seeds are off, the torrent is
// private (no PEX), and the only ICE servers are none (host candidates only).
//
// It reports on stdout, one JSON object a line: {"event":"seeding",...} or
// {"event":"done",...}, then {"event":"wire",...} for every peer connection and
// {"event":"warning"|"error",...} for what the client complains about. It closes
// cleanly (`client.destroy()`, which closes the tracker connection) when its
// stdin reads "close" or ends, and reports {"event":"closed"} before exiting 0.

import { createHash } from 'node:crypto'
import { createReadStream, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'

import parseTorrent from 'parse-torrent'
import WebTorrent from 'webtorrent'

function report (event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n')
}

function fail (message) {
  report('error', { message })
  process.exit(1)
}

function sha256File (path) {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256')
    createReadStream(path)
      .on('data', chunk => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')))
  })
}

const [role, ...args] = process.argv.slice(2)
const argsOk = role === 'seed' ? args.length === 3 : [2, 3].includes(args.length)
if (!['seed', 'download'].includes(role) || !argsOk) {
  process.stderr.write('usage: client.mjs seed PAYLOAD ANNOUNCE_URL TORRENT_OUT | download TORRENT_FILE OUT_DIR [ANNOUNCE_URL]\n')
  process.exit(2)
}

const client = new WebTorrent({
  dht: false,
  lsd: false,
  utp: false,
  natUpnp: false,
  natPmp: false,
  webSeeds: false,
  // Loopback only: no STUN servers (the default list names public ones).
  tracker: { rtcConfig: { iceServers: [] } }
})
client.on('error', err => fail(`webtorrent: ${err.message || err}`))

function watch (torrent) {
  torrent.on('warning', err => report('warning', { message: String(err.message || err) }))
  torrent.on('error', err => fail(`torrent: ${err.message || err}`))
  torrent.on('wire', (wire, addr) => {
    report('wire', { type: wire.type, remoteAddress: addr || wire.remoteAddress || null })
  })
}

let closing = false
function close () {
  if (closing) return
  closing = true
  client.destroy(err => {
    if (err) fail(`destroy: ${err.message || err}`)
    report('closed')
    // @roamhq/wrtc's threads can keep the process alive after the last peer
    // connection is closed.
    process.exit(0)
  })
}
createInterface({ input: process.stdin })
  .on('line', line => { if (line.trim() === 'close') close() })
  .on('close', close)

if (role === 'seed') {
  const [payload, announceUrl, torrentOut] = args
  const torrent = client.seed(payload, {
    announce: [announceUrl],
    private: true,
    createdBy: 'shoal e2e'
  }, torrent => {
    writeFileSync(torrentOut, torrent.torrentFile)
    report('seeding', { infoHash: torrent.infoHash, length: torrent.length, pieces: torrent.pieces.length })
  })
  watch(torrent)
} else {
  // An optional third argument replaces the torrent's trackers (another node of a
  // cluster than the seeder's).
  const [torrentFile, outDir, announceUrl] = args
  const started = Date.now()
  // The client adds `announce` options to the torrent's own trackers: replacing
  // them takes the parsed torrent.
  const parsed = await parseTorrent(readFileSync(torrentFile))
  if (announceUrl) parsed.announce = [announceUrl]
  const torrent = client.add(parsed, { path: outDir })
  watch(torrent)
  torrent.on('done', async () => {
    const file = torrent.files[0]
    const sha256 = await sha256File(join(outDir, file.path))
    report('done', {
      infoHash: torrent.infoHash,
      sha256,
      length: torrent.length,
      downloaded: torrent.downloaded,
      ms: Date.now() - started
    })
  })
}
