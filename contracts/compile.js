#!/usr/bin/env node
// Compiles every contracts/src/*.sol with the pinned solc-js (package-lock.json) through the
// standard-JSON API and writes contracts/artifacts/<Name>.json = {contractName, abi, bytecode}.
// `node compile.js --check` compiles in memory and exits 1 when the committed artifacts differ,
// so CI catches a source edited without recompiling.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const SRC = path.join(__dirname, 'src');
// ARTIFACTS_DIR: compare/write another directory (the test of --check itself uses it).
const OUT = process.env.ARTIFACTS_DIR ? path.resolve(process.env.ARTIFACTS_DIR) : path.join(__dirname, 'artifacts');
// anvil (1.7) accepts cancun; solc's default (newer) would emit opcodes some chains lack.
const EVM_VERSION = 'cancun';
const check = process.argv.includes('--check');

const sources = {};
for (const f of fs.readdirSync(SRC).filter((f) => f.endsWith('.sol')).sort()) {
  sources[f] = { content: fs.readFileSync(path.join(SRC, f), 'utf8') };
}

const input = {
  language: 'Solidity',
  sources,
  settings: {
    evmVersion: EVM_VERSION,
    // viaIR: TokenNetwork's functions take many arguments (stack too deep on the legacy pipeline).
    viaIR: true,
    optimizer: { enabled: true, runs: 10000 },
    // No metadata hash: the bytecode then depends only on the sources, not on file paths or comments' IPFS hash.
    metadata: { bytecodeHash: 'none', appendCBOR: false },
    outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
let failed = false;
for (const e of output.errors || []) {
  if (e.severity === 'error') failed = true;
  console.error(e.formattedMessage);
}
if (failed) process.exit(1);

const artifacts = {};
for (const file of Object.keys(output.contracts).sort()) {
  for (const [name, c] of Object.entries(output.contracts[file])) {
    // Interfaces (no code) and internal-only libraries (no functions) get no artifact.
    if (!c.evm.bytecode.object || !c.abi.some((e) => e.type === 'function')) continue;
    const artifact = {
      contractName: name,
      compiler: `solc-js ${solc.version()}`,
      evmVersion: EVM_VERSION,
      abi: c.abi,
      bytecode: '0x' + c.evm.bytecode.object,
    };
    artifacts[name] = JSON.stringify(artifact, null, 2) + '\n';
  }
}

if (check) {
  let stale = [];
  const committed = fs.existsSync(OUT) ? fs.readdirSync(OUT).filter((f) => f.endsWith('.json')) : [];
  for (const [name, text] of Object.entries(artifacts)) {
    const p = path.join(OUT, `${name}.json`);
    if (!fs.existsSync(p) || fs.readFileSync(p, 'utf8') !== text) stale.push(`${name}.json`);
  }
  for (const f of committed) if (!artifacts[f.replace(/\.json$/, '')]) stale.push(`${f} (no source)`);
  if (stale.length) {
    console.error(`artifacts out of date with sources: ${stale.join(', ')}; run: node contracts/compile.js`);
    process.exit(1);
  }
  console.log(`artifacts match sources (${Object.keys(artifacts).length} contracts, ${solc.version()})`);
} else {
  fs.mkdirSync(OUT, { recursive: true });
  for (const f of fs.readdirSync(OUT).filter((f) => f.endsWith('.json'))) fs.unlinkSync(path.join(OUT, f));
  for (const [name, text] of Object.entries(artifacts)) fs.writeFileSync(path.join(OUT, `${name}.json`), text);
  console.log(`wrote ${Object.keys(artifacts).length} artifacts to ${path.relative(process.cwd(), OUT) || '.'} (${solc.version()})`);
}
