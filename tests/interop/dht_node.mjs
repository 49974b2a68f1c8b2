// A bittorrent-dht (WebTorrent project) node for the DHT interop tests, driven by JSON lines.
//
//   node --input-type=module -e "$(cat dht_node.mjs)" -- --port 0 [--bootstrap 127.0.0.1:6881,127.0.0.1:6882]
//
// stdout events: {"type":"ready","port":N,"id":hex}, {"type":"announce","info_hash":hex,
// "host":..,"port":..} when a peer announces to us, {"type":"peer",...} for lookup results,
// {"type":"reply",...} for commands. stdin commands: {"cmd":"lookup","info_hash":hex},
// {"cmd":"announce","info_hash":hex,"port":N}, {"cmd":"nodes"}, {"cmd":"add_node","host":..,
// "port":..}, {"cmd":"quit"}. End of stdin means quit: it never outlives the test.
import DHT from 'bittorrent-dht'
import readline from 'node:readline'

const args = process.argv  // run with -e, so user arguments start at index 1
const opt = (name, dflt) => {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : dflt
}
const bootstrap = (opt('--bootstrap', '') || '').split(',').filter(Boolean)
const dht = new DHT({ bootstrap: bootstrap.length ? bootstrap : false, host: false })
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

dht.on('error', (err) => emit({ type: 'error', error: String(err) }))
dht.on('warning', (err) => emit({ type: 'warning', error: String(err) }))
dht.on('announce', (peer, infoHash) =>
  emit({ type: 'announce', info_hash: infoHash.toString('hex'), host: peer.host, port: peer.port }))
dht.on('peer', (peer, infoHash) =>
  emit({ type: 'peer', info_hash: infoHash.toString('hex'), host: peer.host, port: peer.port }))
dht.on('listening', () => {
  emit({ type: 'ready', port: dht.address().port, id: dht.nodeId.toString('hex') })
})
dht.listen(Number(opt('--port', '0')), '127.0.0.1')

const quit = () => dht.destroy(() => process.exit(0))
const rl = readline.createInterface({ input: process.stdin })
rl.on('close', quit)
rl.on('line', (line) => {
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch (err) {
    emit({ type: 'reply', ok: false, error: String(err) })
    return
  }
  const reply = (extra) => emit({ type: 'reply', cmd: cmd.cmd, id: cmd.id, ok: true, ...extra })
  if (cmd.cmd === 'quit') quit()
  else if (cmd.cmd === 'nodes') reply({ nodes: dht.toJSON().nodes.length })
  else if (cmd.cmd === 'add_node') {
    dht.addNode({ host: cmd.host, port: cmd.port })
    reply({})
  } else if (cmd.cmd === 'lookup') dht.lookup(cmd.info_hash, (err, n) => reply({ error: err ? String(err) : null, queried: n }))
  else if (cmd.cmd === 'announce') dht.announce(cmd.info_hash, cmd.port, (err) => reply({ error: err ? String(err) : null }))
  else emit({ type: 'reply', cmd: cmd.cmd, id: cmd.id, ok: false, error: 'unknown command' })
})
