// A js-libp2p peer driven over a line-oriented JSON control channel, so the
// pytest interop suite can test py-libp2p against a real, separate js-libp2p
// process (not a mock of one).
//
// Flags (all optional):
//   --listen MA           listen address, repeatable (default /ip4/127.0.0.1/tcp/0)
//   --dht server|client   run @libp2p/kad-dht in that mode (loopback addresses kept)
//   --dht-addrs all|public
//                         which of a peer's addresses the DHT hands out: "all"
//                         (passthroughMapper, the default, so loopback tests
//                         work) or "public" (js's own default, as public DHT
//                         nodes run it: private and loopback ones dropped)
//   --relay-server        run a circuit relay v2 server
//   --relay-limits L      "default" (js defaults: 2 min / 128 KiB per circuit)
//                         or "none" (applyDefaultLimit: false; the default)
//   --relay-max-reservations N
//   --relay-client        add the circuit relay transport (needed by `reserve`)
//   --reserve MA          reserve a slot on this relay at start-up (implies --relay-client)
//   --dcutr / --autonat   add those services
//   --public-cidr CIDR    NAT lab only: treat this documentation range
//                         (203.0.113.0/24 or 198.51.100.0/24, repeatable) as
//                         public. js counts them private, so without this it
//                         never dials them for DCUtR or AutoNAT.
//
// Control channel: one JSON object per line on stdin, {"id": 1, "cmd": "ping",
// ...args}; one JSON object per line on stdout, {"id": 1, "ok": true,
// "result": {...}} or {"id": 1, "ok": false, "error": "..."}. The first stdout
// line is {"event": "ready", "peer_id": ..., "addrs": [...]}. Logs go to stderr.

import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { kadDHT, passthroughMapper, removePrivateAddressesMapper, MessageType } from '@libp2p/kad-dht'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { autoNAT } from '@libp2p/autonat'
import { peerIdFromMultihash, peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id'
import { publicKeyFromProtobuf } from '@libp2p/crypto/keys'
import { RecordEnvelope } from '@libp2p/peer-record'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import * as Digest from 'multiformats/hashes/digest'
import { Netmask } from 'netmask'

const MAX_LINE = 64 * 1024
const DEFAULT_TIMEOUT_MS = 10_000
// Records under /interop/... are accepted by both sides (py registers the same
// namespace), so put/get can be tested across implementations.
const INTEROP_NS = 'interop'
// Signed-envelope domain of circuit relay v2 reservation vouchers.
const VOUCHER_DOMAIN = 'libp2p-relay-rsvp'

function log (...parts) {
  process.stderr.write(`[peer.mjs ${new Date().toISOString()}] ${parts.join(' ')}\n`)
}

function emit (obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function fail (msg) {
  process.stderr.write(`peer.mjs: ${msg}\n`)
  process.exit(2)
}

let args
try {
  args = parseArgs({
    options: {
      listen: { type: 'string', multiple: true },
      dht: { type: 'string' },
      'dht-addrs': { type: 'string', default: 'all' },
      'relay-server': { type: 'boolean' },
      'relay-limits': { type: 'string', default: 'none' },
      'relay-max-reservations': { type: 'string' },
      'relay-client': { type: 'boolean' },
      reserve: { type: 'string' },
      dcutr: { type: 'boolean' },
      autonat: { type: 'boolean' },
      'public-cidr': { type: 'string', multiple: true }
    },
    strict: true
  }).values
} catch (err) {
  fail(err.message)
}

if (args.dht != null && args.dht !== 'server' && args.dht !== 'client') {
  fail(`--dht must be "server" or "client", not ${JSON.stringify(args.dht)}`)
}
if (args['dht-addrs'] !== 'all' && args['dht-addrs'] !== 'public') {
  fail(`--dht-addrs must be "all" or "public", not ${JSON.stringify(args['dht-addrs'])}`)
}
if (args['relay-limits'] !== 'default' && args['relay-limits'] !== 'none') {
  fail(`--relay-limits must be "default" or "none", not ${JSON.stringify(args['relay-limits'])}`)
}

// The NAT lab's "internet" uses documentation ranges, which @libp2p/utils
// lists as private (its isPrivateIp checks a list of Netmask objects). The
// lab ranges named here are taken out of that list by making exactly those
// Netmask ranges contain nothing; every other range is left as it is.
const LAB_RANGES = ['203.0.113.0/24', '198.51.100.0/24']
const publicCidrs = args['public-cidr'] ?? []
for (const cidr of publicCidrs) {
  if (!LAB_RANGES.includes(cidr)) fail(`--public-cidr must be one of ${LAB_RANGES.join(', ')}, not ${JSON.stringify(cidr)}`)
}
if (publicCidrs.length > 0) {
  const lab = publicCidrs.map((c) => new Netmask(c))
  const contains = Netmask.prototype.contains
  Netmask.prototype.contains = function (ip) {
    if (lab.some((n) => n.base === this.base && n.bitmask === this.bitmask)) return false
    return contains.call(this, ip)
  }
}

const listen = args.listen ?? ['/ip4/127.0.0.1/tcp/0']
const relayClient = args['relay-client'] === true || args.reserve != null
if (args.reserve != null) {
  listen.push(`${args.reserve}/p2p-circuit`)
}

const services = {
  identify: identify(),
  ping: ping()
}
if (args.dht != null) {
  services.dht = kadDHT({
    clientMode: args.dht === 'client',
    // The default mapper drops private and loopback addresses, so no
    // loopback test could ever find a peer; the NAT lab's "internet" wants
    // it (with --public-cidr its ranges count as public).
    peerInfoMapper: args['dht-addrs'] === 'public' ? removePrivateAddressesMapper : passthroughMapper,
    validators: { [INTEROP_NS]: async () => {} },
    selectors: { [INTEROP_NS]: () => 0 }
  })
}
if (args['relay-server'] === true) {
  const reservations = {}
  if (args['relay-limits'] === 'none') {
    reservations.applyDefaultLimit = false
  }
  if (args['relay-max-reservations'] != null) {
    const n = Number.parseInt(args['relay-max-reservations'], 10)
    if (!Number.isInteger(n) || n < 1) fail('--relay-max-reservations must be a positive integer')
    reservations.maxReservations = n
  }
  services.relay = circuitRelayServer({ reservations })
}
if (args.dcutr === true) services.dcutr = dcutr()
if (args.autonat === true) services.autonat = autoNAT()

const transports = [tcp()]
if (relayClient) transports.push(circuitRelayTransport())

let node
try {
  node = await createLibp2p({
    addresses: { listen },
    transports,
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services
  })
} catch (err) {
  fail(`cannot start: ${err.message}`)
}

const addrs = () => node.getMultiaddrs().map(String)

node.addEventListener('peer:connect', (evt) => log('connected', evt.detail.toString()))
node.addEventListener('peer:disconnect', (evt) => log('disconnected', evt.detail.toString()))

function withTimeout (msg) {
  const ms = msg.timeout_ms ?? DEFAULT_TIMEOUT_MS
  if (!Number.isInteger(ms) || ms < 1 || ms > 120_000) throw new Error('timeout_ms must be an integer in 1..120000')
  return { signal: AbortSignal.timeout(ms) }
}

function str (msg, name) {
  const v = msg[name]
  if (typeof v !== 'string' || v.length === 0 || v.length > 4096) throw new Error(`"${name}" must be a non-empty string`)
  return v
}

// A dial target: "addr" (a multiaddr ending in /p2p/...) or "peer_id" (known).
function target (msg) {
  if (msg.addr != null) return multiaddr(str(msg, 'addr'))
  return peerIdFromString(str(msg, 'peer_id'))
}

// The canonical protobuf encoding of a circuit v2 Voucher (fields in order:
// relay = 1, peer = 2 as bytes, expiration = 3 as a varint).
function canonicalVoucher ({ relay, peer, expiration }) {
  const varint = (n) => {
    const out = []
    let x = BigInt(n)
    do {
      let b = Number(x & 0x7fn)
      x >>= 7n
      if (x > 0n) b |= 0x80
      out.push(b)
    } while (x > 0n)
    return out
  }
  const field = (tag, bytes) => [tag, ...varint(bytes.length), ...bytes]
  return Uint8Array.from([...field(0x0a, relay), ...field(0x12, peer), 0x18, ...varint(expiration)])
}

function needDht () {
  if (node.services.dht == null) throw new Error('this peer runs without --dht')
  return node.services.dht
}

const peerInfo = (p) => ({ peer_id: p.id.toString(), addrs: p.multiaddrs.map(String) })

const commands = {
  async dial (msg) {
    const conn = await node.dial(target(msg), withTimeout(msg))
    return { peer_id: conn.remotePeer.toString(), remote_addr: conn.remoteAddr.toString() }
  },

  async ping (msg) {
    return { rtt_ms: await node.services.ping.ping(target(msg), withTimeout(msg)) }
  },

  // Run identify on our connection to the peer and report what it told us,
  // including the address it says it sees us at.
  async identify (msg) {
    const opts = withTimeout(msg)
    const conn = await node.dial(target(msg), opts)
    let res
    for (;;) {
      try {
        res = await node.services.identify.identify(conn, opts)
        break
      } catch (err) {
        // js runs identify on every new connection and allows one outbound
        // identify stream at a time: wait for that one to finish.
        if (err.name !== 'TooManyOutboundProtocolStreamsError' || opts.signal.aborted) throw err
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    }
    return {
      peer_id: res.peerId.toString(),
      protocols: res.protocols,
      listen_addrs: res.listenAddrs.map(String),
      observed_addr: res.observedAddr?.toString() ?? null,
      agent_version: res.agentVersion ?? null,
      protocol_version: res.protocolVersion ?? null
    }
  },

  async provide (msg) {
    await node.contentRouting.provide(CID.parse(str(msg, 'cid')), withTimeout(msg))
    return {}
  },

  // Collect providers until `count` distinct ones are seen or the timeout.
  async find_providers (msg) {
    const count = msg.count ?? 1
    const seen = new Map()
    try {
      for await (const p of node.contentRouting.findProviders(CID.parse(str(msg, 'cid')), withTimeout(msg))) {
        seen.set(p.id.toString(), peerInfo(p))
        if (seen.size >= count) break
      }
    } catch (err) {
      if (seen.size === 0) throw err
    }
    return { providers: [...seen.values()] }
  },

  async find_peer (msg) {
    return peerInfo(await node.peerRouting.findPeer(peerIdFromString(str(msg, 'peer_id')), withTimeout(msg)))
  },

  async put_value (msg) {
    const key = new TextEncoder().encode(str(msg, 'key'))
    await node.contentRouting.put(key, Buffer.from(str(msg, 'value_hex'), 'hex'), withTimeout(msg))
    return {}
  },

  async get_value (msg) {
    const key = new TextEncoder().encode(str(msg, 'key'))
    const value = await node.contentRouting.get(key, withTimeout(msg))
    return { value_hex: Buffer.from(value).toString('hex') }
  },

  // One raw FIND_NODE request to one peer (no iterative query), answering
  // with the closer peers exactly as js parsed them. Uses the kad-dht's
  // internal `network`: there is no public single-RPC API.
  async kad_find_node (msg) {
    const dht = needDht()
    if (dht.network?.sendRequest == null) throw new Error('kad-dht internals changed: no network.sendRequest')
    const request = { type: MessageType.FIND_NODE, key: peerIdFromString(str(msg, 'key_peer_id')).toMultihash().bytes }
    for await (const event of dht.network.sendRequest(peerIdFromString(str(msg, 'peer_id')), request, withTimeout(msg))) {
      if (event.name === 'PEER_RESPONSE') return { closer: event.closer.map(peerInfo) }
      if (event.name === 'QUERY_ERROR') throw event.error
    }
    throw new Error('no response')
  },

  // Size of the DHT routing table and, given "peer_id", whether it holds it.
  async routing_table (msg) {
    const rt = needDht().routingTable
    const has = msg.peer_id == null ? null : (await rt.find(peerIdFromString(str(msg, 'peer_id')))) != null
    return { size: rt.size, has }
  },

  // Reserve a slot on a relay; resolves once our circuit address is announced.
  async reserve (msg) {
    if (!relayClient) throw new Error('start this peer with --relay-client to reserve')
    const relay = str(msg, 'addr')
    const opts = withTimeout(msg)
    const circuit = multiaddr(`${relay}/p2p-circuit`)
    await node.components.transportManager.listen([circuit])
    while (!addrs().some((a) => a.includes('/p2p-circuit'))) {
      if (opts.signal.aborted) throw new Error('no relay reservation before the timeout')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    return { addrs: addrs() }
  },

  async addrs () {
    return { addrs: addrs() }
  },

  // Our addresses as js's address manager rates them: `verified` is what
  // AutoNAT (or js's own rules) concluded; `type` is transport/observed/...
  async addr_info () {
    return {
      addrs: node.components.addressManager.getAddressesWithMetadata().map((a) => ({
        addr: a.multiaddr.toString(),
        type: a.type,
        verified: a.verified,
        expires: a.expires
      }))
    }
  },

  async peers () {
    return {
      peers: node.getConnections().map((c) => ({
        peer_id: c.remotePeer.toString(),
        remote_addr: c.remoteAddr.toString(),
        direction: c.direction,
        // What js believes is left of a relayed connection's limits (null: none).
        limits: c.limits == null
          ? null
          : { bytes: c.limits.bytes == null ? null : String(c.limits.bytes), seconds: c.limits.seconds ?? null }
      }))
    }
  },

  // The reservation this peer holds on relay "peer_id", as js's circuit
  // transport stored it, and js's verdict on its voucher. js decodes the
  // voucher as an Envelope message whose payload is already a decoded
  // ReservationVoucher (raw bytes are not kept) and never checks the
  // signature itself; here the payload is re-encoded canonically, as the spec
  // requires relays to sign it, and the signature checked with js's own
  // RecordEnvelope. Uses the transport's internal reservationStore.
  async relay_voucher (msg) {
    const relay = peerIdFromString(str(msg, 'peer_id'))
    const transport = node.components.transportManager.getTransports().find((t) => t.reservationStore != null)
    if (transport == null) throw new Error('no circuit relay transport (start with --relay-client)')
    const entry = transport.reservationStore.getReservation(relay)
    if (entry == null) throw new Error(`no reservation on ${relay}`)
    const v = entry.voucher
    if (v == null) return { expire: String(entry.expire), voucher: null }
    const payload = canonicalVoucher(v.payload)
    const envelope = new RecordEnvelope({
      publicKey: publicKeyFromProtobuf(v.publicKey),
      payloadType: v.payloadType,
      payload,
      signature: v.signature
    })
    return {
      expire: String(entry.expire),
      voucher: {
        signer: peerIdFromPublicKey(envelope.publicKey).toString(),
        payload_type_hex: Buffer.from(v.payloadType).toString('hex'),
        signature_valid: await envelope.validate(VOUCHER_DOMAIN),
        relay: peerIdFromMultihash(Digest.decode(v.payload.relay)).toString(),
        peer: peerIdFromMultihash(Digest.decode(v.payload.peer)).toString(),
        expiration: String(v.payload.expiration)
      }
    }
  },

  async relay_reservations () {
    const relay = node.services.relay
    if (relay == null) throw new Error('this peer runs without --relay-server')
    return { peers: [...relay.reservations.keys()].map(String) }
  },

  async stop () {
    return {}
  }
}

async function handle (line) {
  let msg
  try {
    if (line.length > MAX_LINE) throw new Error('line too long')
    msg = JSON.parse(line)
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new Error('not a JSON object')
  } catch (err) {
    emit({ id: null, ok: false, error: `bad command line: ${err.message}` })
    return
  }
  const id = msg.id ?? null
  const fn = Object.hasOwn(commands, msg.cmd) ? commands[msg.cmd] : null
  if (fn == null) {
    emit({ id, ok: false, error: `unknown command ${JSON.stringify(msg.cmd)}` })
    return
  }
  try {
    const result = await fn(msg)
    emit({ id, ok: true, result })
  } catch (err) {
    log(`command ${msg.cmd} failed:`, err.stack ?? err)
    emit({ id, ok: false, error: `${err.name ?? 'Error'}: ${err.message}` })
  }
  if (msg.cmd === 'stop') await shutdown(0)
}

let stopping = false
async function shutdown (code) {
  if (stopping) return
  stopping = true
  log('stopping')
  const timer = setTimeout(() => process.exit(code), 3000)
  timer.unref()
  try { await node.stop() } catch (err) { log('stop failed:', err.message) }
  process.exit(code)
}

process.on('SIGTERM', () => { shutdown(0) })
process.on('SIGINT', () => { shutdown(130) })

await node.start()
log('started', node.peerId.toString(), 'services:', Object.keys(services).join(','))
emit({ event: 'ready', peer_id: node.peerId.toString(), addrs: addrs() })

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity })
rl.on('line', (line) => { if (line.trim() !== '') handle(line) })
// The test harness closing our stdin means it is gone: do not outlive it.
rl.on('close', () => { shutdown(0) })
