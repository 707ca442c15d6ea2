// Registers the module resolution hook that maps k6's module names ('k6',
// 'k6/metrics', 'k6/execution', 'k6/http', 'k6/x/remotewrite') to the
// stand-in's shims in lib/k6/, so the scenario files load unchanged:
//
//   node --import ./lib/register.mjs lib/runner.mjs constant-rate.js
//
// runner.mjs and the VU workers also call ensureHooks() themselves, so the
// --import is optional.
import { register } from 'node:module';

export function ensureHooks() {
  if (globalThis.__k6StandInHooks) return;
  register('./k6-hooks.mjs', import.meta.url);
  globalThis.__k6StandInHooks = true;
}

ensureHooks();
