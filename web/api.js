// Talks to the server. The session cookie travels by itself (HttpOnly, SameSite=Strict); every
// mutating call also sends the session's CSRF token, which only this page can read.

let csrf = null;
let onSignedOut = () => {};

export function setCsrf(token) { csrf = token; }
export function whenSignedOut(handler) { onSignedOut = handler; }

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

async function call(method, path, body, tagged = false) {
  const headers = { 'Accept': 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrf || '';
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-cache',
  });
  const text = await response.text();
  const data = text && response.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text;
  if (!response.ok) {
    const error = data?.error || {};
    if (response.status === 401 && !path.endsWith('/login')) onSignedOut();
    throw new ApiError(response.status, error.code || 'http_' + response.status, error.message || response.statusText,
      response.headers.get('retry-after'));
  }
  return tagged ? { data, etag: response.headers.get('etag') } : data;
}

export const get = (path) => call('GET', path);
/// `{ data, etag }`. The browser revalidates with the ETag it holds (a 304 comes back as the
/// cached answer), so an unchanged ETag means unchanged data: a live page then draws nothing.
export const getTagged = (path) => call('GET', path, undefined, true);
export const post = (path, body) => call('POST', path, body ?? {});
export const put = (path, body) => call('PUT', path, body);
export const del = (path) => call('DELETE', path);

/// `path?k=v&...` without the empty values.
export function query(path, params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') search.set(key, value);
  }
  const text = search.toString();
  return text ? `${path}?${text}` : path;
}
