// Supabase's official storage client (@supabase/storage-js) against a Supabase
// Storage server (docpipe's twin: internal/mock/storage.go). Prints one JSON object
// of facts as the last line of stdout; internal/mock/sdk_test.go checks them.
//
// usage: node scripts/sdk/storage.mjs STORAGE_URL [KEY]
//   STORAGE_URL  e.g. http://127.0.0.1:8083/storage/v1 (the hosted gateway form)
//                or the bare self-hosted form http://127.0.0.1:8083   (env SUPABASE_STORAGE_URL)
//   KEY          the service key, sent as apikey and Authorization: Bearer, the way
//                supabase-js does (env SUPABASE_SERVICE_KEY, default sb-docpipe-test)
// SDK_DEBUG=1 logs every HTTP exchange on stderr.
import { readFileSync } from 'node:fs';
import { StorageClient, StorageApiError, StorageError, isStorageError } from '@supabase/storage-js';

const pkgVersion = (name) => JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url))).version;

const [url = process.env.SUPABASE_STORAGE_URL, key = process.env.SUPABASE_SERVICE_KEY || 'sb-docpipe-test'] = process.argv.slice(2);
if (!url) {
  console.error('usage: node storage.mjs STORAGE_URL [KEY]');
  process.exit(2);
}

// Every HTTP exchange the SDK makes (storage-js takes a custom fetch).
const wire = [];
const spyFetch = async (input, init = {}) => {
  const req = input instanceof Request ? input : new Request(input, init);
  const res = await fetch(input, init);
  let body = null;
  if (res.status >= 300) {
    const text = await res.clone().text();
    try { body = JSON.parse(text); } catch { body = text; }
  }
  wire.push({ method: req.method, path: new URL(req.url).pathname, status: res.status, body });
  if (process.env.SDK_DEBUG) console.error(req.method, req.url, res.status, body ? JSON.stringify(body) : '');
  return res;
};

const headers = (k) => ({ apikey: k, Authorization: `Bearer ${k}` });
const storage = new StorageClient(url, headers(key), spyFetch);

const describeError = (e) => e && ({
  class: e.constructor?.name,
  name: e.name,
  isStorageError: isStorageError(e),
  isStorageApiError: e instanceof StorageApiError,
  message: e.message,
  status: e.status ?? null, // the HTTP status
  statusCode: e.statusCode ?? null, // the body's statusCode
});

// Runs fn (which returns the SDK's {data, error} or facts) and records the wire.
const step = async (fn) => {
  const before = wire.length;
  let facts;
  try {
    facts = await fn();
  } catch (e) {
    facts = { thrown: describeError(e) ?? String(e) };
  }
  if (facts && facts.error) facts.error = describeError(facts.error);
  facts.wire = wire.slice(before).map((w) => `${w.method} ${w.path} ${w.status}`);
  facts.bodies = wire.slice(before).filter((w) => w.body !== null).map((w) => w.body);
  return facts;
};

const enc = new TextEncoder();
const bucket = 'sdk-docs';
const files = () => storage.from(bucket);
const out = { node: process.version, sdk: { '@supabase/storage-js': pkgVersion('@supabase/storage-js') }, url };

// Buckets.
out.create_bucket = await step(async () => storage.createBucket(bucket, { public: false }));
out.get_bucket = await step(async () => {
  const { data, error } = await storage.getBucket(bucket);
  return { error, id: data?.id, name: data?.name, public: data?.public };
});
out.list_buckets = await step(async () => {
  const { data, error } = await storage.listBuckets();
  return { error, names: (data ?? []).map((b) => b.name) };
});

// 1. upload (binary body, x-upsert false), again (409 Duplicate), then upsert.
const v1 = enc.encode('docpipe v1\n');
const v2 = enc.encode('docpipe version two\n');
out.upload = await step(async () => files().upload('raw/a.txt', v1, { contentType: 'text/plain' }));
out.upload_again = await step(async () => files().upload('raw/a.txt', v1, { contentType: 'text/plain' }));
out.upsert = await step(async () => files().upload('raw/a.txt', v2, { contentType: 'text/plain', upsert: true }));
// A Blob goes as multipart/form-data.
out.upload_blob = await step(async () =>
  files().upload('raw/b.json', new Blob(['{"ok":true}'], { type: 'application/json' }), { cacheControl: '60' }));

// 2. download.
const readBlob = async (b) => ({ text: await b.text(), type: b.type, size: b.size });
out.download = await step(async () => {
  const { data, error } = await files().download('raw/a.txt');
  return { error, ...(data ? await readBlob(data) : {}) };
});
out.download_blob = await step(async () => {
  const { data, error } = await files().download('raw/b.json');
  return { error, ...(data ? await readBlob(data) : {}) };
});

// 3. info, exists, list.
out.info = await step(async () => {
  const { data, error } = await files().info('raw/a.txt');
  return { error, name: data?.name, size: data?.size, contentType: data?.contentType, bucketId: data?.bucketId, id: data?.id };
});
out.exists = await step(async () => ({ yes: (await files().exists('raw/a.txt')).data, no: (await files().exists('raw/none.txt')).data }));
out.list = await step(async () => {
  const { data, error } = await files().list('raw');
  return { error, names: (data ?? []).map((o) => o.name) };
});

// 4. createSignedUrl, then fetch it with no credentials.
const fetchFacts = async (u) => {
  const res = await fetch(u);
  const text = await res.text();
  return { status: res.status, text, contentDisposition: res.headers.get('content-disposition'), contentType: res.headers.get('content-type') };
};
out.signed_url = await step(async () => {
  const { data, error } = await files().createSignedUrl('raw/a.txt', 60);
  return { error, signedUrl: data?.signedUrl, fetched: data ? await fetchFacts(data.signedUrl) : null };
});
out.signed_url_download = await step(async () => {
  const { data, error } = await files().createSignedUrl('raw/a.txt', 60, { download: 'report.txt' });
  return { error, fetched: data ? await fetchFacts(data.signedUrl) : null };
});
out.signed_urls = await step(async () => {
  const { data, error } = await files().createSignedUrls(['raw/a.txt', 'raw/none.txt'], 60);
  const rows = [];
  for (const r of data ?? []) rows.push({ path: r.path, error: r.error, fetched: r.signedUrl ? await fetchFacts(r.signedUrl) : null });
  return { error, rows };
});
// A name with a space and non-ASCII letters.
const odd = 'dir/with space ä.txt';
out.odd_name = await step(async () => {
  const up = await files().upload(odd, enc.encode('odd\n'), { contentType: 'text/plain' });
  const down = await files().download(odd);
  const signed = await files().createSignedUrl(odd, 60);
  return {
    error: up.error ?? down.error ?? signed.error,
    uploaded: up.data?.fullPath ?? null,
    downloaded: down.data ? await down.data.text() : null,
    signedUrl: signed.data?.signedUrl ?? null,
    fetched: signed.data ? await fetchFacts(signed.data.signedUrl) : null,
  };
});

// 5. createSignedUploadUrl + uploadToSignedUrl (no credentials on the upload), then download.
out.signed_upload = await step(async () => {
  const s = await files().createSignedUploadUrl('signed/c.txt');
  if (s.error) return { error: s.error, stage: 'createSignedUploadUrl' };
  const u = await files().uploadToSignedUrl(s.data.path, s.data.token, enc.encode('uploaded via signed url\n'), { contentType: 'text/plain' });
  if (u.error) return { error: u.error, stage: 'uploadToSignedUrl', signedUrl: s.data.signedUrl };
  const d = await files().download('signed/c.txt');
  return { error: d.error, path: u.data.path, fullPath: u.data.fullPath, token: !!s.data.token, signedUrl: s.data.signedUrl, downloaded: d.data ? await d.data.text() : null };
});
// A signed upload URL for an existing object without upsert: 409.
out.signed_upload_exists = await step(async () => files().createSignedUploadUrl('signed/c.txt'));
// With upsert, the signed upload replaces it.
out.signed_upload_upsert = await step(async () => {
  const s = await files().createSignedUploadUrl('signed/c.txt', { upsert: true });
  if (s.error) return { error: s.error, stage: 'createSignedUploadUrl' };
  const u = await files().uploadToSignedUrl(s.data.path, s.data.token, enc.encode('replaced\n'), { contentType: 'text/plain', upsert: true });
  if (u.error) return { error: u.error, stage: 'uploadToSignedUrl' };
  const d = await files().download('signed/c.txt');
  return { error: d.error, downloaded: d.data ? await d.data.text() : null };
});

// 6. remove, then the removed object is a 404 StorageError.
out.remove = await step(async () => {
  const { data, error } = await files().remove(['raw/a.txt', 'raw/b.json', 'signed/c.txt', odd]);
  return { error, names: (data ?? []).map((o) => o.name).sort() };
});
out.download_missing = await step(async () => {
  const { data, error } = await files().download('raw/a.txt');
  return { error, data: data ? 'unexpected data' : null };
});
out.missing_bucket = await step(async () => {
  const { error } = await storage.from('no-such-bucket').download('x.txt');
  return { error };
});

// 7. Wrong credentials.
out.wrong_key = await step(async () => {
  const { error } = await new StorageClient(url, headers('wrong-key'), spyFetch).from(bucket).download('raw/a.txt');
  return { error };
});
out.wrong_bearer = await step(async () => {
  const { error } = await new StorageClient(url, { apikey: key, Authorization: 'Bearer wrong-key' }, spyFetch).from(bucket).download('raw/a.txt');
  return { error };
});

out.is_error_class = { StorageError: typeof StorageError === 'function', StorageApiError: typeof StorageApiError === 'function' };
process.stdout.write(JSON.stringify(out) + '\n');
