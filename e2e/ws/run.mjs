// End-to-end test of tracker_ws (the WebTorrent tracker) with real WebTorrent
// clients: two Node processes running the `webtorrent` npm package (client.mjs),
// whose WebRTC is @roamhq/wrtc, and whose only tracker is tracker_ws.
//
//   node e2e/ws/run.mjs --protocol ws  --tracker-bin target/release/tracker_ws
//   node e2e/ws/run.mjs --protocol wss --tracker-bin target/release/tracker_ws
//   node e2e/ws/run.mjs --protocol ws  --tracker-bin target/release/tracker_ws --cluster
//
// With --cluster, two trackers are nodes of one cluster over a nats-server
// (Debian's package, started here on a loopback port): the seeder announces to
// node A, the downloader to node B, so that they find each other, and their
// offers and answers travel, only through the cluster; every scrape below is
// asked of both nodes, which must agree.
//
// It must run in a network namespace whose only interface is `lo` (that is how
// scripts/e2e-ws.sh starts it: `unshare -n`), so that every packet, the
// WebSocket ones and the WebRTC ones, stays on loopback: WebRTC offers host
// candidates for every interface it sees. It refuses to run elsewhere.
//
// One client seeds a random payload, the other downloads it. They find each
// other only through the tracker: DHT, local service discovery, uTP, NAT port
// mapping and web seeds are off, the torrent is private (no PEX), and there are
// no ICE servers. Their WebRTC offers and answers travel through the tracker.
// With --protocol wss the tracker serves TLS with a certificate for 127.0.0.1
// made here with openssl; the clients trust it through NODE_EXTRA_CA_CERTS and
// check certificates as always.
//
// The test checks:
//   * with the seeder announced, a WebSocket scrape of the info hash shows 1
//     seeder, no leecher;
//   * the payload arrives at the downloader intact (SHA-256), over WebRTC peer
//     connections only, all of it downloaded;
//   * while both run, a scrape shows 2 seeders, no leecher and 1 completed
//     download;
//   * once the downloader has closed (it announces `stopped`, then closes its
//     connection), the seeder count is back to 1 within 3 s; once the seeder is
//     killed (no `stopped`: the kernel closes its connection), it is 0 within
//     3 s (the tracker forgets a closed connection's peers at once); the
//     completed count stays 1;
//   * no client reported a warning or an error (a tracker's failure reason is a
//     warning) up to the end of its part (for the seeder, until the downloader
//     leaves), and the tracker logged no "bad message" (a message of a real
//     client that it could not parse);
//   * over wss, the port refuses plain ws:// and a client that does not trust
//     the test certificate;
//   * the downloader exits 0 when told to close, and the tracker exits 0 on
//     SIGTERM.
//
// Everything runs within --timeout seconds; every process started is killed at
// the end, whatever happens. The last line says "1 passed, 0 failed" or
// "0 passed, 1 failed".

import { spawn, spawnSync } from 'node:child_process'
import { randomBytes, createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { networkInterfaces, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const HERE = dirname(fileURLToPath(import.meta.url))
const LOOPBACK = '127.0.0.1'
const PAYLOAD_SIZE = 4 * 1024 * 1024
const START = Date.now()

function log (message) {
  const secs = ((Date.now() - START) / 1000).toFixed(1).padStart(6)
  process.stdout.write(`[${secs}s] ${message}\n`)
}

class TestFailure extends Error {}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

// --------------------------------------------------------------------------
// Child processes
// --------------------------------------------------------------------------

/** A child process whose output is kept line by line; a client's stdout lines
 * are JSON events. */
class Child {
  constructor (name, command, args, options) {
    this.name = name
    this.stdout = []
    this.stderr = []
    this.events = []
    this.exit = null // { code, signal } once exited
    this.proc = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options })
    this.exited = new Promise(resolve => {
      this.proc.on('exit', (code, signal) => {
        this.exit = { code, signal }
        resolve(this.exit)
      })
      this.proc.on('error', err => {
        this.stderr.push(`spawn failed: ${err.message}`)
        this.exit = { code: null, signal: null, error: err }
        resolve(this.exit)
      })
    })
    this.proc.stdin.on('error', () => {}) // a child that is gone does not read
    this._lines(this.proc.stdout, line => {
      this.stdout.push(line)
      if (line.startsWith('{')) {
        try { this.events.push(JSON.parse(line)) } catch {}
      }
    })
    this._lines(this.proc.stderr, line => this.stderr.push(line))
  }

  _lines (stream, onLine) {
    let rest = ''
    stream.setEncoding('utf8')
    stream.on('data', chunk => {
      const parts = (rest + chunk).split('\n')
      rest = parts.pop()
      parts.forEach(onLine)
    })
    stream.on('end', () => { if (rest) onLine(rest) })
  }

  running () {
    return this.exit === null
  }

  /** The first event of kind `event`, waiting up to `seconds`. */
  async waitEvent (event, seconds, describe) {
    const end = Date.now() + seconds * 1000
    for (;;) {
      const found = this.events.find(e => e.event === event)
      if (found) return found
      const error = this.events.find(e => e.event === 'error')
      if (error) throw new TestFailure(`${this.name} failed: ${error.message}`)
      if (!this.running()) {
        throw new TestFailure(`${this.name} exited (${describeExit(this.exit)}) before ${describe}`)
      }
      if (Date.now() >= end) throw new TestFailure(`${this.name}: no ${describe} within ${seconds} s`)
      await sleep(50)
    }
  }

  /** Waits up to `seconds` for the exit; kills it (and fails) past that. */
  async waitExit (seconds) {
    const timer = sleep(seconds * 1000).then(() => 'timeout')
    if (await Promise.race([this.exited, timer]) === 'timeout') {
      this.kill()
      throw new TestFailure(`${this.name} did not exit within ${seconds} s`)
    }
    return this.exit
  }

  kill () {
    if (this.running()) this.proc.kill('SIGKILL')
  }
}

function describeExit (exit) {
  if (!exit) return 'still running'
  if (exit.error) return `could not start: ${exit.error.message}`
  return exit.signal ? `signal ${exit.signal}` : `status ${exit.code}`
}

// --------------------------------------------------------------------------
// WebSocket scrape
// --------------------------------------------------------------------------

/** The 20 bytes of a hex info hash as the protocol writes them: one character
 * U+0000..U+00FF a byte. */
function hexToBinaryString (hex) {
  return Buffer.from(hex, 'hex').toString('latin1')
}

/** One scrape over a new WebSocket connection: { complete, incomplete,
 * downloaded } of the info hash. */
function scrapeOnce (WebSocket, url, infoHashHex, ca, seconds) {
  const infoHash = hexToBinaryString(infoHashHex)
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { ca, handshakeTimeout: seconds * 1000 })
    const timer = setTimeout(() => {
      ws.terminate()
      reject(new Error(`no scrape answer within ${seconds} s`))
    }, seconds * 1000)
    const finish = (err, value) => {
      clearTimeout(timer)
      ws.terminate()
      if (err) reject(err); else resolve(value)
    }
    ws.on('error', err => finish(err))
    ws.on('open', () => ws.send(JSON.stringify({ action: 'scrape', info_hash: infoHash })))
    ws.on('message', data => {
      let message
      try { message = JSON.parse(String(data)) } catch {
        return finish(new TestFailure(`scrape answer is not JSON: ${String(data).slice(0, 300)}`))
      }
      if (message['failure reason'] !== undefined) {
        return finish(new TestFailure(`tracker refused the scrape: ${message['failure reason']}`))
      }
      if (message.action !== 'scrape') return // not ours (the tracker sends nothing else unasked)
      const entry = message.files && message.files[infoHash]
      const counts = entry && ['complete', 'incomplete', 'downloaded'].map(k => entry[k])
      if (!counts || !counts.every(n => Number.isInteger(n) && n >= 0)) {
        return finish(new TestFailure(`scrape answer lacks counts for the info hash: ${String(data).slice(0, 300)}`))
      }
      finish(null, { complete: counts[0], incomplete: counts[1], downloaded: counts[2] })
    })
  })
}

// --------------------------------------------------------------------------
// The test
// --------------------------------------------------------------------------

class Run {
  constructor (args, WebSocket) {
    this.args = args
    this.WebSocket = WebSocket
    this.protocol = args.protocol
    this.tmp = mkdtempSync(join(tmpdir(), `shoal-e2e-${this.protocol}-`))
    this.children = []
    this.cleaningUp = false
    this.tracker = null
    // With --cluster: the nats-server, node B and its URL.
    this.nats = null
    this.natsUrl = null
    this.trackerB = null
    this.urlB = null
    this.seeder = null
    this.downloader = null
    this.certPath = null
    this.keyPath = null
    this.ca = undefined
    this.port = null
    this.infoHash = null
    this.deadline = Date.now() + args.timeout * 1000
  }

  /** `seconds`, or what is left of the time budget if less. */
  cap (seconds) {
    return Math.max(0, Math.min(seconds, (this.deadline - Date.now()) / 1000))
  }

  start (name, command, args, env = {}) {
    // The run goes on in the background after a timeout: it must start nothing
    // once the cleanup has begun.
    if (this.cleaningUp) throw new TestFailure(`not starting the ${name}: the run is over`)
    const child = new Child(name, command, args, { cwd: this.tmp, env: { ...process.env, ...env } })
    this.children.push(child)
    return child
  }

  checkLoopbackOnly () {
    const names = Object.keys(networkInterfaces())
    const others = names.filter(name => name !== 'lo')
    if (others.length > 0 || !names.includes('lo')) {
      throw new TestFailure(
        `interfaces here: ${names.join(', ') || 'none up'}; this test must run in a network ` +
        'namespace whose only interface is lo, up (scripts/e2e-ws.sh runs it under unshare -n)'
      )
    }
  }

  makePayload () {
    const dir = join(this.tmp, 'seed')
    mkdirSync(dir)
    this.payloadPath = join(dir, 'payload.bin')
    const payload = randomBytes(PAYLOAD_SIZE)
    writeFileSync(this.payloadPath, payload)
    this.payloadSha256 = createHash('sha256').update(payload).digest('hex')
    log(`payload: ${PAYLOAD_SIZE} random bytes, sha256 ${this.payloadSha256}`)
  }

  /** A self-signed certificate for 127.0.0.1 (an IP subjectAltName, which a
   * client checking the URL's host needs), valid for a day, and its key. */
  makeCertificate () {
    this.certPath = join(this.tmp, 'cert.pem')
    this.keyPath = join(this.tmp, 'key.pem')
    const result = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
      '-subj', `/CN=${LOOPBACK}`, '-addext', `subjectAltName=IP:${LOOPBACK}`,
      '-keyout', this.keyPath, '-out', this.certPath
    ], { encoding: 'utf8', timeout: 30000, stdio: ['ignore', 'pipe', 'pipe'] })
    if (result.error) {
      throw new TestFailure(`openssl: ${result.error.message} (run scripts/install-test-deps.sh)`)
    }
    if (result.status !== 0) {
      throw new TestFailure(`openssl req failed with status ${result.status}: ${result.stderr.trim()}`)
    }
    this.ca = readFileSync(this.certPath)
    log(`self-signed certificate for ${LOOPBACK}: ${this.certPath}`)
  }

  trackerConfig (node) {
    // debug: the tracker logs every message it cannot parse ("bad message"),
    // which the test looks for.
    let text = 'log_level = "debug"\n[network]\n' + `address = "${LOOPBACK}:0"\n`
    if (this.protocol === 'wss') {
      text += '[tls]\nenabled = true\n' +
        `certificate_chain_path = ${JSON.stringify(this.certPath)}\n` +
        `private_key_path = ${JSON.stringify(this.keyPath)}\n`
    }
    // A statistics line each second (relayed offers and answers, connections,
    // peers) for the log printed on failure.
    text += '[statistics]\ninterval_secs = 1\n'
    if (node) {
      // Two trackers side by side: metrics on ports of their own choosing.
      text += '[metrics]\naddress = "127.0.0.1:0"\n'
      text += '[cluster]\nenabled = true\n' + `nats_url = ${JSON.stringify(this.natsUrl)}\n` +
        `name = "e2e"\nnode_id = "${node}"\n`
    }
    return text
  }

  /** With --cluster: a nats-server on a loopback port of its choosing. */
  async startNats () {
    this.nats = this.start('nats-server', '/usr/sbin/nats-server', ['-a', LOOPBACK, '-p', '-1'])
    const m = await this.waitLine(this.nats, /Listening for client connections on [^:]+:(\d+)/, 10)
    this.natsUrl = `nats://${LOOPBACK}:${m[1]}`
    log(`nats-server listens on ${this.natsUrl}`)
  }

  /** Waits for a line of `child`'s stderr to match `pattern`; the match. */
  async waitLine (child, pattern, seconds) {
    const end = Date.now() + this.cap(seconds) * 1000
    for (;;) {
      for (const line of child.stderr) {
        const m = pattern.exec(line)
        if (m) return m
      }
      if (!child.running()) {
        throw new TestFailure(`the ${child.name} exited early (${describeExit(child.exit)})`)
      }
      if (Date.now() >= end) {
        throw new TestFailure(`the ${child.name} did not log ${pattern} within ${seconds} s`)
      }
      await sleep(50)
    }
  }

  /** Starts a tracker (cluster node `node`, if given); its process and URL. */
  async startOneTracker (name, node) {
    const config = join(this.tmp, `${name}.toml`)
    writeFileSync(config, this.trackerConfig(node))
    log(`starting the ${name}: ${this.args['tracker-bin']} -c ${config}`)
    const tracker = this.start(name, this.args['tracker-bin'], ['-c', config])
    const pattern = new RegExp(`listening on ${this.protocol}://127\\.0\\.0\\.1:(\\d+)`)
    const m = await this.waitLine(tracker, pattern, 10)
    const url = `${this.protocol}://${LOOPBACK}:${m[1]}`
    log(`the ${name} listens on ${url}`)
    return { tracker, port: Number(m[1]), url }
  }

  async startTracker () {
    if (this.args.cluster) await this.startNats()
    const a = await this.startOneTracker('tracker', this.args.cluster ? 'a' : null)
    this.tracker = a.tracker
    this.port = a.port
    this.url = a.url
    if (this.args.cluster) {
      const b = await this.startOneTracker('tracker B', 'b')
      this.trackerB = b.tracker
      this.urlB = b.url
      // Each node logs the other's first resync once it has heard it.
      for (const [tracker, other] of [[this.tracker, 'b'], [this.trackerB, 'a']]) {
        await this.waitLine(tracker, new RegExp(`resync from node ${other}`), 15)
      }
      log('the nodes hear each other')
    }
  }

  /** Over wss, the port must refuse plain ws:// and a client that does not trust
   * the test certificate (certificate checks are on). */
  async checkTlsRefusals () {
    const plainUrl = `ws://${LOOPBACK}:${this.port}`
    try {
      await scrapeOnce(this.WebSocket, plainUrl, '00'.repeat(20), undefined, 3)
    } catch (err) {
      // A TestFailure says what the tracker answered: it did answer.
      if (err instanceof TestFailure) throw new TestFailure(`the wss port answered plain ws://: ${err.message}`)
      log(`plain ws:// on the wss port is refused, as it should be (${err.message})`)
      try {
        await scrapeOnce(this.WebSocket, this.url, '00'.repeat(20), undefined, 3)
      } catch (err) {
        if (!/certificate/i.test(err.message)) {
          throw new TestFailure(`a client without the test CA failed, but not on the certificate: ${err.message}`)
        }
        log(`a client without the test CA is refused, as it should be (${err.message})`)
        return
      }
      throw new TestFailure('a client that does not trust the test certificate could scrape over wss')
    }
    throw new TestFailure('the wss tracker answered a plain ws:// scrape')
  }

  async scrape (url = this.url) {
    let problem = null
    for (let attempt = 0; attempt < 4; attempt++) {
      try {
        return await scrapeOnce(this.WebSocket, url, this.infoHash, this.ca, 3)
      } catch (err) {
        if (err instanceof TestFailure) throw err
        if (/certificate/i.test(err.message)) {
          throw new TestFailure(`scrape over wss: certificate check failed: ${err.message}`)
        }
        problem = err.message
        await sleep(200)
      }
    }
    throw new TestFailure(`no scrape answer from ${url} after 4 tries (${problem})`)
  }

  /** Scrapes until `want(counts)` holds or `seconds` pass; returns the counts. */
  async pollScrape (want, describe, seconds = 15) {
    const end = Date.now() + this.cap(seconds) * 1000
    let last = null
    for (;;) {
      const counts = await this.scrape()
      let text = `seeders=${counts.complete} leechers=${counts.incomplete} completed=${counts.downloaded}`
      let wanted = want(counts)
      if (this.urlB) {
        // A cluster: node B must say the same.
        const b = await this.scrape(this.urlB)
        text = `node A ${text}; node B seeders=${b.complete} leechers=${b.incomplete} completed=${b.downloaded}`
        wanted = wanted && want(b)
      }
      if (text !== last) log(`scrape: ${text}`)
      last = text
      if (wanted) return counts
      if (Date.now() >= end) throw new TestFailure(`scrape never showed ${describe}; last: ${text}`)
      await sleep(200)
    }
  }

  clientEnv () {
    // Certificate checks stay on: the clients trust the test certificate in
    // addition to the system's CAs, nothing less.
    return this.certPath ? { NODE_EXTRA_CA_CERTS: this.certPath } : {}
  }

  async startSeeder () {
    const torrentPath = join(this.tmp, 'payload.torrent')
    this.seeder = this.start('seeder', process.execPath, [
      join(HERE, 'client.mjs'), 'seed', this.payloadPath, this.url, torrentPath
    ], this.clientEnv())
    const seeding = await this.seeder.waitEvent('seeding', this.cap(20), 'seeding')
    this.infoHash = seeding.infoHash
    this.torrentPath = torrentPath
    log(`seeder hashed the payload: info hash ${this.infoHash}, ${seeding.pieces} pieces`)
  }

  async download () {
    const outDir = join(this.tmp, 'download')
    mkdirSync(outDir)
    const started = Date.now()
    // In a cluster the downloader asks node B only: the seeder is on node A.
    const announce = this.urlB ? [this.urlB] : []
    this.downloader = this.start('downloader', process.execPath, [
      join(HERE, 'client.mjs'), 'download', this.torrentPath, outDir, ...announce
    ], this.clientEnv())
    const done = await this.downloader.waitEvent('done', this.cap(30), 'download done')
    log(`download done in ${((Date.now() - started) / 1000).toFixed(1)} s ` +
      `(the client's own count: ${done.ms} ms from adding the torrent)`)
    if (done.sha256 !== this.payloadSha256) {
      throw new TestFailure(`downloaded payload sha256 ${done.sha256}, expected ${this.payloadSha256}`)
    }
    if (done.length !== PAYLOAD_SIZE || done.downloaded < PAYLOAD_SIZE) {
      throw new TestFailure(`downloader got ${done.downloaded} of ${done.length} bytes, expected all ${PAYLOAD_SIZE}`)
    }
    const wires = this.downloader.events.filter(e => e.event === 'wire')
    if (wires.length === 0) throw new TestFailure('the downloader reported no peer connection')
    const other = wires.filter(w => w.type !== 'webrtc')
    if (other.length > 0) {
      throw new TestFailure(`the downloader had peer connections other than WebRTC: ${JSON.stringify(other)}`)
    }
    log(`payload intact (sha256 matches), ${done.downloaded} bytes over ` +
      `${wires.length} WebRTC connection(s): ${wires.map(w => w.remoteAddress).join(', ')}`)
  }

  async closeClient (child) {
    log(`closing the ${child.name}`)
    child.proc.stdin.write('close\n')
    await child.waitEvent('closed', this.cap(10), 'closed')
    const exit = await child.waitExit(this.cap(10))
    if (exit.code !== 0) throw new TestFailure(`the ${child.name} exited with ${describeExit(exit)}, expected status 0`)
  }

  /** No warning or error from `clients` so far: a tracker's failure reason, an
   * announce that failed, a peer connection that broke. */
  checkNoComplaints (...clients) {
    for (const child of clients) {
      const complaints = child.events.filter(e => e.event === 'warning' || e.event === 'error')
      if (complaints.length > 0) {
        throw new TestFailure(`the ${child.name} complained: ${complaints.map(e => e.message).join(' | ')}`)
      }
    }
  }

  checkTrackerParsedAll () {
    const trackers = [this.tracker, this.trackerB].filter(t => t !== null)
    const bad = trackers.flatMap(t => t.stderr.filter(line => line.includes('bad message')))
    if (bad.length > 0) {
      throw new TestFailure(`the tracker could not parse messages of the real clients:\n${bad.join('\n')}`)
    }
  }

  async stopTracker () {
    for (const tracker of [this.tracker, this.trackerB].filter(t => t !== null)) {
      log(`stopping the ${tracker.name} with SIGTERM`)
      tracker.proc.kill('SIGTERM')
      const exit = await tracker.waitExit(this.cap(10))
      if (exit.code !== 0) throw new TestFailure(`the ${tracker.name} exited with ${describeExit(exit)} after SIGTERM, expected status 0`)
      log(`the ${tracker.name} exited with status 0`)
    }
  }

  async run () {
    log(`temp dir ${this.tmp}`)
    this.checkLoopbackOnly()
    this.makePayload()
    if (this.protocol === 'wss') this.makeCertificate()
    await this.startTracker()
    if (this.protocol === 'wss') await this.checkTlsRefusals()

    await this.startSeeder()
    await this.pollScrape(c => c.complete === 1 && c.incomplete === 0, 'seeders=1 leechers=0 (the seeder)')

    await this.download()
    // The downloader announced `started` with bytes left (a leecher), then
    // `completed`: one completed download, two seeders.
    await this.pollScrape(
      c => c.complete === 2 && c.incomplete === 0 && c.downloaded === 1,
      'seeders=2 leechers=0 completed=1 with both clients'
    )
    // From here on the seeder sends the tracker nothing, and may complain of its
    // peer connection when the downloader goes: it is checked now.
    this.checkNoComplaints(this.seeder, this.downloader)

    await this.closeClient(this.downloader)
    // The tracker drops a closed connection's peers at once: a short window,
    // which a tracker that only expires silent peers would not pass.
    await this.pollScrape(
      c => c.complete === 1 && c.incomplete === 0 && c.downloaded === 1,
      'seeders=1 leechers=0 completed=1 after the downloader closed',
      3
    )

    // The seeder is killed: no `stopped` announce, the kernel just closes its
    // connection, and that alone must take its peer out of the swarm at once.
    log('killing the seeder (SIGKILL)')
    this.seeder.kill()
    await this.seeder.waitExit(this.cap(10))
    await this.pollScrape(
      c => c.complete === 0 && c.incomplete === 0 && c.downloaded === 1,
      'seeders=0 leechers=0 completed=1 after the seeder was killed',
      3
    )

    this.checkNoComplaints(this.downloader)
    this.checkTrackerParsedAll()
    await this.stopTracker()
  }

  dumpLogs () {
    for (const child of this.children) {
      for (const [stream, lines] of [['stderr', child.stderr], ['stdout', child.stdout]]) {
        const shown = lines.slice(-200)
        process.stdout.write(`----- ${child.name} ${stream} (${lines.length} lines, last ${shown.length}) -----\n`)
        for (const line of shown) process.stdout.write(line + '\n')
      }
    }
  }

  async cleanup () {
    this.cleaningUp = true
    for (const child of this.children) child.kill()
    await Promise.race([Promise.all(this.children.map(c => c.exited)), sleep(5000)])
    if (this.args['keep-tmp']) {
      log(`kept temp dir ${this.tmp}`)
    } else {
      rmSync(this.tmp, { recursive: true, force: true })
    }
  }
}

async function main () {
  const { values: args } = parseArgs({
    options: {
      protocol: { type: 'string' },
      'tracker-bin': { type: 'string' },
      timeout: { type: 'string', default: '60' },
      'keep-tmp': { type: 'boolean', default: false },
      cluster: { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false }
    }
  })
  if (!['ws', 'wss'].includes(args.protocol) || !args['tracker-bin']) {
    process.stderr.write('usage: node e2e/ws/run.mjs --protocol ws|wss --tracker-bin PATH [--cluster] [--timeout SECS] [--keep-tmp] [--verbose]\n')
    return 2
  }
  args.timeout = Number(args.timeout)
  // Certificate checks stay on, here and in the clients, whatever the caller's
  // environment says.
  delete process.env.NODE_TLS_REJECT_UNAUTHORIZED
  args['tracker-bin'] = resolve(args['tracker-bin'])
  const summary = `e2e ${args.protocol}${args.cluster ? ' cluster' : ''} real clients`

  let WebSocket
  try {
    ({ WebSocket } = await import('ws'))
  } catch (err) {
    process.stdout.write(`cannot load the npm packages in ${HERE} (${err.message}); run scripts/install-test-deps.sh\n`)
    process.stdout.write(`${summary}: 0 passed, 1 failed\n`)
    return 1
  }

  const run = new Run(args, WebSocket)
  let failed = null
  // The time budget, and a signal from outside, end the run through the cleanup.
  let onAbort
  const aborted = new Promise(resolve => { onAbort = resolve })
  const watchdog = setTimeout(() => onAbort(`timed out after ${args.timeout} s`), args.timeout * 1000)
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => onAbort(`interrupted by ${signal}`))
  try {
    const outcome = await Promise.race([run.run().then(() => null), aborted])
    if (outcome !== null) failed = outcome
  } catch (err) {
    failed = err instanceof TestFailure ? err.message : (err.stack || String(err))
  } finally {
    clearTimeout(watchdog)
  }
  if (failed !== null) process.stdout.write(`FAILED: ${failed}\n`)
  if (failed !== null || args.verbose) run.dumpLogs()
  await run.cleanup()
  log(`total ${((Date.now() - START) / 1000).toFixed(1)} s`)
  process.stdout.write(`${summary}: ${failed === null ? '1 passed, 0 failed' : '0 passed, 1 failed'}\n`)
  return failed === null ? 0 : 1
}

process.exitCode = await main()
// Whatever is still pending (a scrape socket, a timer) must not hold the exit.
process.exit(process.exitCode)
