// Module resolution hook (node:module register()): k6's built-in module
// names resolve to the stand-in's shims; any other 'k6/...' name fails with a
// clear message instead of "Cannot find package".
export const K6_MODULES = {
  k6: './k6/k6.mjs',
  'k6/metrics': './k6/metrics.mjs',
  'k6/execution': './k6/execution.mjs',
  'k6/http': './k6/http.mjs',
  'k6/x/remotewrite': './k6/remotewrite.mjs',
};

export async function resolve(specifier, context, next) {
  const file = K6_MODULES[specifier];
  if (file) return { url: new URL(file, import.meta.url).href, format: 'module', shortCircuit: true };
  if (specifier === 'k6' || specifier.startsWith('k6/')) {
    throw new Error(
      `module '${specifier}' is not provided by the k6 stand-in runner (it has: ${Object.keys(K6_MODULES).join(', ')})`,
    );
  }
  return next(specifier, context);
}

/**
 * The script's source with its static import specifiers made absolute: k6
 * module names to the shims' file URLs, relative paths against the script's
 * own URL. The VU workers load this copy, so they need no hooks of their own
 * (a hooks thread per VU would double each VU's memory and start-up cost).
 */
export function rewriteImports(source, scriptUrl) {
  const re = /(\bimport\s+(?:[\w*{}\s,$]+\s+from\s+)?|\bexport\s+[\w*{}\s,$]+\s+from\s+)(['"])([^'"\n]+)\2/g;
  return source.replace(re, (all, head, q, spec) => {
    let url;
    if (K6_MODULES[spec]) url = new URL(K6_MODULES[spec], import.meta.url).href;
    else if (spec.startsWith('./') || spec.startsWith('../')) url = new URL(spec, scriptUrl).href;
    else return all;
    return `${head}${q}${url}${q}`;
  });
}
