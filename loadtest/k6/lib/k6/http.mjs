// Minimal stand-in for 'k6/http': expectedStatuses and setResponseCallback
// (so scripts written for k6 load), no requests. Note that
// xk6-client-prometheus-remote ignores the response callback: its requests
// always count only 2xx as expected (see README.md).
export function expectedStatuses(...list) {
  for (const s of list) {
    if (typeof s !== 'number' && !(s && typeof s.min === 'number' && typeof s.max === 'number')) {
      throw new Error('expectedStatuses: use status codes or {min, max} objects');
    }
  }
  return { expectedStatuses: list };
}

let callback = expectedStatuses({ min: 200, max: 399 });

export function setResponseCallback(cb) {
  callback = cb;
}

export function responseCallback() {
  return callback;
}

function notHere(name) {
  return () => {
    throw new Error(`http.${name}() is not implemented by the k6 stand-in runner`);
  };
}

export const get = notHere('get');
export const post = notHere('post');
export const put = notHere('put');
export const del = notHere('del');
export const request = notHere('request');
export const batch = notHere('batch');

export default { expectedStatuses, setResponseCallback, get, post, put, del, request, batch };
