// chainops.validator: a runner over the EthereumJS execution client (@ethereumjs/client, its `ethereumjs`
// CLI). The CLI keeps the devp2p node key inside its LevelDB config store (<dataDir>/<chain>/config,
// created with a random key on first start), so the enode cannot be known before the node runs and a
// node restored from another's data keeps the other's enode. This runner makes the key a file of the
// host's own:
//
//   ethereumjs start --node-key-file F --data-dir DIR --genesis FILE [--options-file F] [CLI options...]
//       writes F's key into the config store, then runs the CLI with --dataDir DIR --gethGenesis FILE,
//       the options file's lines (one CLI option a line, `--name=value`; blank and # lines skipped) and
//       the other options unchanged (the CLI's own flags: --port, --bootnodes, --rpc, --mine, ...)
//   ethereumjs new-key --key-file F         writes a new random key to F (0600; refuses to replace one)
//   ethereumjs node-id --node-key-file F    the enode ID of F's key (128 hex digits; nothing starts)
//
// Key files hold 64 hex digits (an optional 0x). The chain's directory is named as the CLI names it:
// the genesis file's name up to its first dot. On SIGTERM/SIGINT the CLI stops the client; should
// that not end within ETHEREUMJS_STOP_SECONDS (default 30), the runner exits with status 1 and says so.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const clientDir = path.dirname(require.resolve('@ethereumjs/client/package.json'));
// The client's own dependencies, at the versions its lockfile pinned.
const load = (name) => import(pathToFileURL(require.resolve(name, { paths: [clientDir] })).href);

function fail(message) {
  process.stderr.write(`ethereumjs-node: ${message}\n`);
  process.exit(2);
}

function option(argv, name) {
  const index = argv.indexOf(name);
  if (index < 0 || index + 1 >= argv.length || argv[index + 1].startsWith('--')) fail(`${name} needs a value`);
  return argv[index + 1];
}

function readKey(file) {
  let text;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (error) {
    return fail(`cannot read ${file}: ${error.code || error.message}`);
  }
  const match = /^(?:0x)?([0-9a-fA-F]{64})$/.exec(text);
  if (!match) fail(`${file}: expected a secp256k1 private key as 64 hex digits`);
  return Uint8Array.from(Buffer.from(match[1], 'hex'));
}

async function publicKey(key) {
  const { secp256k1 } = await load('ethereum-cryptography/secp256k1.js');
  try {
    return secp256k1.getPublicKey(key, false).slice(1);
  } catch (error) {
    return fail(`not a valid secp256k1 private key: ${error.message}`);
  }
}

async function start(argv) {
  const keyFile = option(argv, '--node-key-file');
  const dataDir = option(argv, '--data-dir');
  const genesis = option(argv, '--genesis');
  const own = new Set(['--node-key-file', '--data-dir', '--genesis', '--options-file']);
  const given = argv.filter((arg, index) => !own.has(arg) && !own.has(argv[index - 1]));
  const fromFile = [];
  if (argv.includes('--options-file')) {
    const file = option(argv, '--options-file');
    let lines;
    try {
      lines = readFileSync(file, 'utf8').split('\n').map((line) => line.trim());
    } catch (error) {
      fail(`cannot read ${file}: ${error.code || error.message}`);
    }
    lines.forEach((line, index) => {
      if (line === '' || line.startsWith('#')) return;
      if (!line.startsWith('--')) fail(`${file}:${index + 1}: an option starts with --, got ${JSON.stringify(line)}`);
      fromFile.push(line);
    });
  }
  const rest = [...fromFile, ...given];
  if (rest.some((arg) => /^--(dataDir|gethGenesis)\b/.test(arg))) fail('give --data-dir and --genesis, not the CLI\'s --dataDir/--gethGenesis');
  const key = readKey(keyFile);
  await publicKey(key); // refuse a key the client would choke on, before anything is written
  const configDir = path.join(dataDir, path.parse(genesis).base.split('.')[0], 'config');
  mkdirSync(configDir, { recursive: true, mode: 0o700 });
  const { Level } = await load('level');
  const store = new Level(configDir);
  await store.put('config:client_key', key, { keyEncoding: 'utf8', valueEncoding: 'view' });
  await store.close();
  const bound = Number(process.env.ETHEREUMJS_STOP_SECONDS || 30);
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.once(signal, () => {
      setTimeout(() => {
        process.stderr.write(`ethereumjs-node: the client did not stop within ${bound} s of ${signal}; exiting\n`);
        process.exit(1);
      }, bound * 1000).unref();
    });
  }
  // The CLI logs a failed start and returns, and Node then exits 0 (nothing left to do): a stopped client
  // that was not asked to stop (the CLI's stop ends with process.exit, which skips this) is a failure.
  process.once('beforeExit', () => {
    process.stderr.write('ethereumjs-node: the client stopped on its own (its errors are above)\n');
    process.exit(1);
  });
  process.argv = [process.argv[0], 'ethereumjs', '--dataDir', dataDir, '--gethGenesis', genesis, ...rest];
  await import(pathToFileURL(path.join(clientDir, 'dist/esm/bin/cli.js')).href);
}

const [command, ...argv] = process.argv.slice(2);
if (command === 'start') {
  await start(argv);
} else if (command === 'new-key') {
  const { secp256k1 } = await load('ethereum-cryptography/secp256k1.js');
  const file = option(argv, '--key-file');
  try {
    writeFileSync(file, `${Buffer.from(secp256k1.utils.randomPrivateKey()).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    fail(`cannot create ${file}: ${error.code || error.message}`);
  }
} else if (command === 'node-id') {
  const id = await publicKey(readKey(option(argv, '--node-key-file')));
  process.stdout.write(`${Buffer.from(id).toString('hex')}\n`);
} else {
  fail('usage: ethereumjs start|new-key|node-id ... (see the head of ethereumjs-node.mjs)');
}
