// The official OpenAI Node SDK against an OpenAI-compatible embeddings server
// (docpipe's twin: internal/mock/openai.go). Prints one JSON object of facts on
// stdout; internal/mock/sdk_test.go checks them. Exits 0 unless the script itself
// breaks (an SDK error where one is not expected is reported as {"error": ...}).
//
// usage: node scripts/sdk/openai.mjs BASE_URL [API_KEY] [RATE_LIMITED_BASE_URL] [QUOTA_BASE_URL]
//   BASE_URL              e.g. http://127.0.0.1:8081/v1   (env OPENAI_BASE_URL)
//   API_KEY               the key the server accepts        (env OPENAI_API_KEY, default sk-docpipe-test)
//   RATE_LIMITED_BASE_URL a server answering every embeddings request 429 rate_limit_exceeded
//   QUOTA_BASE_URL        a server answering every embeddings request 429 insufficient_quota
// SDK_DEBUG=1 logs every HTTP exchange on stderr.
import OpenAI from 'openai';
import { readFileSync } from 'node:fs';

const pkgVersion = (name) => JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url))).version;

const [baseURL = process.env.OPENAI_BASE_URL, apiKey = process.env.OPENAI_API_KEY || 'sk-docpipe-test', rateLimitedURL, quotaURL] =
  process.argv.slice(2);
if (!baseURL) {
  console.error('usage: node openai.mjs BASE_URL [API_KEY] [RATE_LIMITED_BASE_URL] [QUOTA_BASE_URL]');
  process.exit(2);
}

// Every HTTP exchange the SDK makes, as it went on the wire.
const wire = [];
const spyFetch = async (url, init = {}) => {
  let body = null;
  if (typeof init.body === 'string') {
    try { body = JSON.parse(init.body); } catch { body = init.body; }
  }
  const res = await fetch(url, init);
  const text = await res.clone().text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  wire.push({
    method: init.method || 'GET',
    path: new URL(String(url)).pathname,
    request: body,
    status: res.status,
    headers: Object.fromEntries(res.headers),
    response: json,
  });
  if (process.env.SDK_DEBUG) console.error(init.method || 'GET', String(url), res.status, res.status >= 300 ? text : '');
  return res;
};

const client = (url, opts = {}) => new OpenAI({ baseURL: url, apiKey, fetch: spyFetch, timeout: 10_000, ...opts });

const describeError = (e) => ({
  class: e?.constructor?.name,
  isAPIError: e instanceof OpenAI.APIError,
  isRateLimitError: e instanceof OpenAI.RateLimitError,
  isAuthenticationError: e instanceof OpenAI.AuthenticationError,
  status: e?.status,
  code: e?.code ?? null,
  type: e?.type ?? null,
  param: e?.param ?? null,
  message: e?.message,
  request_id: e?.requestID ?? null,
  headers: e?.headers ? Object.fromEntries(e.headers) : null,
});

// Runs fn, returning its facts or {error: ...}.
const attempt = async (fn) => {
  try { return await fn(); } catch (e) { return { error: describeError(e) }; }
};

const embeddingFacts = (res, w) => ({
  object: res.object,
  model: res.model,
  usage: res.usage,
  n: res.data.length,
  indexes: res.data.map((d) => d.index),
  objects: [...new Set(res.data.map((d) => d.object))],
  dims: res.data.map((d) => (Array.isArray(d.embedding) ? d.embedding.length : -1)),
  all_numbers: res.data.every((d) => Array.isArray(d.embedding) && d.embedding.every((x) => typeof x === 'number' && Number.isFinite(x))),
  norms: res.data.map((d) => Math.sqrt(d.embedding.reduce((s, x) => s + x * x, 0))),
  head: res.data.map((d) => d.embedding.slice(0, 4)),
  request_id: res._request_id ?? null,
  // What went on the wire for this call.
  sent_encoding_format: w?.request?.encoding_format ?? null,
  sent_dimensions: w?.request?.dimensions ?? null,
  wire_embedding_types: (w?.response?.data ?? []).map((d) => typeof d.embedding),
  status: w?.status,
  path: w?.path,
});

const out = {
  node: process.version,
  sdk: { openai: pkgVersion('openai') },
};
const inputs = ['The quick brown fox jumps over the lazy dog.', 'docpipe ingests documents', 'ünïcödé ✓ 日本語'];
const ok = client(baseURL);

// 1. Default settings: the SDK asks for base64 and decodes it to floats.
let b64Vectors = null;
out.base64_default = await attempt(async () => {
  const res = await ok.embeddings.create({ model: 'text-embedding-3-small', input: inputs });
  b64Vectors = res.data.map((d) => d.embedding);
  return embeddingFacts(res, wire.at(-1));
});

// 2. encoding_format float: the JSON arrays come through as they are.
out.float = await attempt(async () => {
  const res = await ok.embeddings.create({ model: 'text-embedding-3-small', input: inputs, encoding_format: 'float' });
  const facts = embeddingFacts(res, wire.at(-1));
  // The same vectors as the base64 call, to float32 precision.
  facts.same_as_base64 = !!b64Vectors && res.data.every((d, i) =>
    d.embedding.length === b64Vectors[i].length && d.embedding.every((x, j) => Math.fround(x) === Math.fround(b64Vectors[i][j])));
  return facts;
});

// 3. dimensions (text-embedding-3-*), one string input, base64 by default.
out.dimensions = await attempt(async () => {
  const res = await ok.embeddings.create({ model: 'text-embedding-3-large', input: 'short input', dimensions: 256 });
  return embeddingFacts(res, wire.at(-1));
});

// 4. Token-id input (array of arrays of cl100k ids).
out.token_ids = await attempt(async () => {
  const res = await ok.embeddings.create({ model: 'text-embedding-3-small', input: [[9906, 1917], [15339]], encoding_format: 'float' });
  return embeddingFacts(res, wire.at(-1));
});

// 5. Models.
out.models = await attempt(async () => {
  const ids = [];
  for await (const m of ok.models.list()) ids.push(m.id);
  const one = await ok.models.retrieve('text-embedding-3-small');
  return { ids, retrieved: one.id, object: one.object };
});
out.model_not_found = await attempt(async () => {
  await ok.models.retrieve('no-such-model');
  return { unexpected: 'no error' };
});

// 6. A request error: the SDK surfaces the 400 body as BadRequestError.
out.bad_request = await attempt(async () => {
  await ok.embeddings.create({ model: 'text-embedding-3-small', input: 'x', encoding_format: 'float', dimensions: 0 });
  return { unexpected: 'no error' };
});

// 7. Wrong key: AuthenticationError (401 invalid_api_key).
out.auth = await attempt(async () => {
  await client(baseURL, { apiKey: 'sk-wrong-key-0000000000000000' }).embeddings.create({ model: 'text-embedding-3-small', input: 'x' });
  return { unexpected: 'no error' };
});

// 8. 429 rate_limit_exceeded: the SDK retries (default maxRetries 2, honouring
//    retry-after-ms), then throws RateLimitError.
if (rateLimitedURL) {
  const before = wire.length;
  const t0 = Date.now();
  out.rate_limited = await attempt(async () => {
    await client(rateLimitedURL).embeddings.create({ model: 'text-embedding-3-small', input: 'x' });
    return { unexpected: 'no error' };
  });
  out.rate_limited.elapsed_ms = Date.now() - t0;
  out.rate_limited.attempts = wire.length - before;
}

// 9. 429 insufficient_quota: RateLimitError with that code (no retries asked for).
if (quotaURL) {
  out.quota = await attempt(async () => {
    await client(quotaURL, { maxRetries: 0 }).embeddings.create({ model: 'text-embedding-3-small', input: 'x' });
    return { unexpected: 'no error' };
  });
}

out.wire_paths = wire.map((w) => `${w.method} ${w.path} ${w.status}`);
process.stdout.write(JSON.stringify(out, null, 1) + '\n');
