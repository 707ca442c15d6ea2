// Stand-in for k6's 'k6' module: check, sleep, group, fail, randomSeed.
import { emitCheck, requireVU, sleepSeconds, vu } from '../vu.mjs';

export function check(value, checks, tags) {
  requireVU('check()');
  let all = true;
  for (const [name, fn] of Object.entries(checks)) {
    let ok;
    try {
      ok = Boolean(typeof fn === 'function' ? fn(value) : fn);
    } catch {
      ok = false; // k6 also counts a throwing predicate as failed
    }
    emitCheck(name, ok, tags);
    all &&= ok;
  }
  return all;
}

export function sleep(seconds) {
  sleepSeconds(seconds);
}

/** Runs fn with the 'group' tag set to '::name' (nested: '::a::b'), as k6. */
export function group(name, fn) {
  const prev = vu.tags.group;
  vu.tags.group = `${prev ?? ''}::${name}`;
  try {
    return fn();
  } finally {
    if (prev === undefined) delete vu.tags.group;
    else vu.tags.group = prev;
  }
}

export function fail(message) {
  throw new Error(message ?? 'fail() called');
}

export function randomSeed() {
  // Not implemented: Math.random cannot be seeded here.
}

export default { check, sleep, group, fail, randomSeed };
