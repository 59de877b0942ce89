// chainops.validator: a Polykey agent runner over the `polykey` library (the npm package the Polykey
// CLI wraps; the CLI itself is not on npm). It takes the settings of `polykey agent start` that a seed
// node needs, and adds what a service needs:
//
//   polykey agent start --node-path DIR --password-file F --recovery-code-file F
//                       --agent-host H --agent-port P --client-host H --client-port P [--format json]
//   polykey node-id --recovery-code-file F      the node ID the recovery code derives (nothing starts)
//
// Environment, as the CLI's: PK_SEED_NODES ("<nodeId>@<host>:<port>;..."; "<defaults>", the CLI's
// token for the network's published seeds, is refused: this runner resolves no network), and
// PK_PASSWORD_OPS_LIMIT / PK_PASSWORD_MEM_LIMIT (the password KDF's limits: min|interactive|moderate|
// sensitive). And its own: PK_MDNS (mDNS off unless "true": a seed node must not multicast on every
// interface), PK_STATUS_PORT (a loopback HTTP endpoint, GET /status, for the health checker: state,
// node ID, active connections and node graph size; 0 turns it off).
//
// On SIGTERM/SIGINT the agent is stopped cleanly (status.json says DEAD): a dependency of the
// library installs handlers that exit at once, so this runner replaces them.
'use strict';

const fs = require('fs');
const http = require('http');

function fail(message) {
  process.stderr.write(`polykey-agent: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const options = {};
  for (let index = 0; index < argv.length; index += 1) {
    const arg = argv[index];
    if (!arg.startsWith('--')) fail(`unexpected argument ${JSON.stringify(arg)}`);
    const name = arg.slice(2);
    const value = argv[index + 1];
    if (value === undefined || value.startsWith('--')) fail(`--${name} needs a value`);
    options[name] = value;
    index += 1;
  }
  return options;
}

function readSecret(path, what) {
  if (!path) fail(`--${what} is required`);
  try {
    return fs.readFileSync(path, 'utf8').trim();
  } catch (error) {
    return fail(`cannot read ${what} ${path}: ${error.code || error.message}`);
  }
}

function port(value, name) {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 0 || number > 65535) fail(`--${name} must be a port, got ${value}`);
  return number;
}

// "<nodeId>@<host>:<port>;..." -> {nodeId: [host, port]}: the shape PolykeyAgent reads (the library's
// own parseSeedNodes returns {host, port} objects, which the agent does not read).
function seedNodes(text, nodesUtils) {
  const seeds = {};
  for (const entry of (text || '').split(';').map((s) => s.trim()).filter(Boolean)) {
    if (entry === '<defaults>') fail('PK_SEED_NODES: <defaults> (the network\'s published seeds) is not supported here; list the seeds');
    const match = /^([^@]+)@(.+):(\d+)$/.exec(entry);
    if (!match) fail(`PK_SEED_NODES: ${JSON.stringify(entry)} is not <nodeId>@<host>:<port>`);
    if (nodesUtils.decodeNodeId(match[1]) == null) fail(`PK_SEED_NODES: ${match[1]} is not a node ID`);
    seeds[match[1]] = [match[2].replace(/^\[(.*)\]$/, '$1'), port(match[3], 'seed port')];
  }
  return seeds;
}

async function nodeId(recoveryCodeFile) {
  const keysUtils = require('polykey/dist/keys/utils');
  const nodesUtils = require('polykey/dist/nodes/utils');
  const code = readSecret(recoveryCodeFile, 'recovery-code-file');
  if (!keysUtils.validateRecoveryCode(code)) fail('the recovery code is not a valid 24- or 12-word BIP-39 mnemonic');
  const keyPair = await keysUtils.generateDeterministicKeyPair(code);
  return nodesUtils.encodeNodeId(keysUtils.publicKeyToNodeId(keyPair.publicKey));
}

async function start(options) {
  const { default: PolykeyAgent } = require('polykey/dist/PolykeyAgent');
  const { default: Logger, LogLevel, StreamHandler, formatting } = require('@matrixai/logger');
  const keysUtils = require('polykey/dist/keys/utils');
  const nodesUtils = require('polykey/dist/nodes/utils');
  const password = readSecret(options['password-file'], 'password-file');
  const recoveryCode = readSecret(options['recovery-code-file'], 'recovery-code-file');
  if (!password) fail('the password file is empty');
  if (!keysUtils.validateRecoveryCode(recoveryCode)) fail('the recovery code is not a valid BIP-39 mnemonic');
  if (!options['node-path']) fail('--node-path is required');
  const limits = { min: 'min', interactive: 'interactive', moderate: 'moderate', sensitive: 'sensitive' };
  const keys = { recoveryCode, strictMemoryLock: false };
  for (const [variable, key] of [['PK_PASSWORD_OPS_LIMIT', 'passwordOpsLimit'], ['PK_PASSWORD_MEM_LIMIT', 'passwordMemLimit']]) {
    const value = process.env[variable];
    if (value) {
      if (!(value in limits)) fail(`${variable} must be one of ${Object.keys(limits).join(', ')}, got ${value}`);
      keys[key] = key === 'passwordOpsLimit' ? keysUtils.passwordOpsLimits[value] : keysUtils.passwordMemLimits[value];
    }
  }
  const logger = new Logger('polykey', LogLevel.INFO, [
    new StreamHandler(formatting.format`${formatting.level}:${formatting.keys}:${formatting.msg}`),
  ]);
  const agentOptions = {
    nodePath: options['node-path'],
    agentServiceHost: options['agent-host'] || '::',
    agentServicePort: port(options['agent-port'] || '1314', 'agent-port'),
    clientServiceHost: options['client-host'] || 'localhost',
    clientServicePort: port(options['client-port'] || '1315', 'client-port'),
    seedNodes: seedNodes(process.env.PK_SEED_NODES, nodesUtils),
    keys,
  };
  if (process.env.PK_MDNS !== 'true') {
    // polykey 1.15 always creates mDNS (UDP 64023, multicast groups joined on every interface) and has no
    // option against it; its NodeManager skips mDNS when it has none, so it gets none.
    const NodeManager = require('polykey/dist/nodes/NodeManager').default;
    const nodeManagerStart = NodeManager.prototype.start;
    NodeManager.prototype.start = function startWithoutMdns(...args) {
      this.mdns = undefined;
      return nodeManagerStart.apply(this, args);
    };
  }
  const agent = await PolykeyAgent.createPolykeyAgent({ password, options: agentOptions, logger });
  const id = nodesUtils.encodeNodeId(agent.keyRing.getNodeId());
  const started = {
    status: 'LIVE', nodeId: id, agentHost: agent.agentServiceHost, agentPort: agent.agentServicePort,
    clientHost: agent.clientServiceHost, clientPort: agent.clientServicePort,
  };
  process.stdout.write(`${options.format === 'json' ? JSON.stringify(started) : `Agent ${id} started`}\n`);

  let server;
  const statusPort = port(process.env.PK_STATUS_PORT || '0', 'PK_STATUS_PORT');
  if (statusPort > 0) {
    server = http.createServer(async (request, response) => {
      if (request.url !== '/status') {
        response.writeHead(404).end();
        return;
      }
      try {
        const connections = agent.nodeConnectionManager.listConnections().map((c) => nodesUtils.encodeNodeId(c.nodeId));
        const graph = [];
        for await (const [contactId] of agent.nodeGraph.getNodeContacts()) graph.push(nodesUtils.encodeNodeId(contactId));
        const body = JSON.stringify({ status: 'LIVE', nodeId: id, connections: [...new Set(connections)], nodeGraph: graph });
        response.writeHead(200, { 'Content-Type': 'application/json' }).end(body);
      } catch (error) {
        response.writeHead(503, { 'Content-Type': 'application/json' }).end(JSON.stringify({ status: 'ERROR', error: String(error) }));
      }
    });
    server.listen(statusPort, '127.0.0.1');
  }

  let stopping = false;
  const stop = async (signal) => {
    if (stopping) return;
    stopping = true;
    logger.info(`${signal}: stopping the agent`);
    if (server) server.close();
    await agent.stop();
    process.exit(0);
  };
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.removeAllListeners(signal);
    process.on(signal, () => { stop(signal).catch((error) => fail(`stop failed: ${error}`)); });
  }
}

async function main() {
  const [command, sub, ...rest] = process.argv.slice(2);
  if (command === 'node-id') {
    const options = parseArgs([sub, ...rest].filter((a) => a !== undefined));
    process.stdout.write(`${await nodeId(options['recovery-code-file'])}\n`);
  } else if (command === 'agent' && sub === 'start') {
    await start(parseArgs(rest));
  } else {
    fail('usage: polykey agent start --node-path DIR --password-file F --recovery-code-file F [...] | polykey node-id --recovery-code-file F');
  }
}

main().catch((error) => fail(error && error.stack ? error.stack : String(error)));
