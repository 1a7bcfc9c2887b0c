#!/usr/bin/env node
/**
 * The vhostsim command's entry point (`npm start`, and the `vhostsim` bin once built). The
 * commands live in program.ts; importing this module from elsewhere runs nothing.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { main } from './program.js';

export { main };

function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) process.exitCode = main(process.argv.slice(2));
