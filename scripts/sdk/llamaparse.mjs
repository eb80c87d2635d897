// The official LlamaParse TypeScript SDKs against a LlamaParse-compatible server
// (docpipe's twin: internal/mock/llamaparse.go). Prints one JSON object of facts as
// the last line of stdout; internal/mock/sdk_test.go checks them.
//
//   - llama-cloud-services' LlamaParseReader (the current SDK: /api/v1/parsing/...);
//   - the generated API client of @llamaindex/cloud (its predecessor, still in use),
//     whose legacy functions call /api/parsing/... .
//
// usage: node scripts/sdk/llamaparse.mjs BASE_URL FILE [API_KEY]
//   BASE_URL  the server root, e.g. http://127.0.0.1:8082   (env LLAMA_CLOUD_BASE_URL)
//   FILE      a document to parse (a multi-page PDF shows page splitting)
//   API_KEY   the key the server accepts (env LLAMA_CLOUD_API_KEY, default llx-docpipe-test)
// SDK_DEBUG=1 logs every HTTP exchange on stderr.
import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { readFileSync } from 'node:fs';

const pkgVersion = (name) => JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url))).version;

// The SDKs log progress and deprecation notices; keep stdout for the result.
for (const k of ['log', 'info', 'warn', 'debug']) console[k] = (...a) => process.stderr.write(a.join(' ') + '\n');

const [baseUrl = process.env.LLAMA_CLOUD_BASE_URL, file, apiKey = process.env.LLAMA_CLOUD_API_KEY || 'llx-docpipe-test'] =
  process.argv.slice(2);
if (!baseUrl || !file) {
  console.error('usage: node llamaparse.mjs BASE_URL FILE [API_KEY]');
  process.exit(2);
}

// Every HTTP exchange, as it went on the wire (both SDKs use globalThis.fetch at call time).
const wire = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init) => {
  const req = input instanceof Request ? input : new Request(input, init);
  const res = await realFetch(input, init);
  wire.push(`${req.method} ${new URL(req.url).pathname} ${res.status}`);
  if (process.env.SDK_DEBUG) console.error(wire.at(-1));
  return res;
};

const { LlamaParseReader } = await import('llama-cloud-services/reader');
const legacy = await import('@llamaindex/cloud/api');

const describeError = (e) => {
  if (e instanceof Error) return { class: e.constructor.name, message: e.message, cause: e.cause ? describeError(e.cause) : undefined };
  return { thrown: e }; // hey-api's throwOnError throws the parsed error body
};
const attempt = async (fn) => {
  const before = wire.length;
  let facts;
  try { facts = await fn(); } catch (e) { facts = { error: describeError(e) }; }
  facts.wire = wire.slice(before);
  return facts;
};

const data = new Uint8Array(await readFile(file));
const name = basename(file);
const out = {
  node: process.version,
  sdk: {
    'llama-cloud-services': pkgVersion('llama-cloud-services'),
    '@llamaindex/cloud': pkgVersion('@llamaindex/cloud'),
  },
};

const reader = (opts = {}) => new LlamaParseReader({
  apiKey, baseUrl, verbose: false, ignoreErrors: false, checkInterval: 0.05, maxCheckInterval: 0.2, maxTimeout: 30, ...opts,
});

// 1. LlamaParseReader, markdown, split by page (default page separator "\n---\n").
out.reader_markdown = await attempt(async () => {
  const docs = await reader({ resultType: 'markdown' }).loadDataAsContent(data, name);
  return { documents: docs.map((d) => d.text) };
});

// 2. The same with a base URL ending in /api/parsing (the old documented form), text result.
out.reader_text_old_base = await attempt(async () => {
  const docs = await reader({ resultType: 'text', baseUrl: baseUrl.replace(/\/$/, '') + '/api/parsing' }).loadDataAsContent(data, name);
  return { documents: docs.map((d) => d.text) };
});

// 3. JSON result (pages, job_metadata) through parse().
out.reader_json = await attempt(async () => {
  const results = await reader({ resultType: 'json' }).parse(data);
  return {
    results: results.map((r) => ({
      job_id: r.job_id,
      pages: (r.pages ?? []).map((p) => ({ page: p.page, md: p.md, text: p.text })),
      job_metadata: r.job_metadata,
      is_completed: r.is_completed,
    })),
  };
});

// 4. Wrong key: the reader throws.
out.reader_bad_key = await attempt(async () => {
  const docs = await reader({ apiKey: 'llx-wrong-key', resultType: 'markdown' }).loadDataAsContent(data, name);
  return { unexpected: 'no error', documents: docs.length };
});

// 5. The legacy routes through @llamaindex/cloud's generated client.
const client = legacy.client;
client.setConfig({ baseUrl, headers: { Authorization: `Bearer ${apiKey}` } });
out.legacy = await attempt(async () => {
  const up = await legacy.uploadFileApiParsingUploadPost({
    client, throwOnError: true,
    body: { file: new Blob([data]), page_separator: ' ===PAGE {pageNumber}=== ' },
  });
  const id = up.data.id;
  const statuses = [up.data.status];
  const deadline = Date.now() + 30_000;
  let st;
  do {
    await new Promise((r) => setTimeout(r, 50));
    st = (await legacy.getJobApiParsingJobJobIdGet({ client, throwOnError: true, path: { job_id: id } })).data;
    if (statuses.at(-1) !== st.status) statuses.push(st.status);
  } while (st.status === 'PENDING' && Date.now() < deadline);
  const md = await legacy.getJobResultApiParsingJobJobIdResultMarkdownGet({ client, throwOnError: true, path: { job_id: id } });
  const txt = await legacy.getJobTextResultApiParsingJobJobIdResultTextGet({ client, throwOnError: true, path: { job_id: id } });
  const js = await legacy.getJobJsonResultApiParsingJobJobIdResultJsonGet({ client, throwOnError: true, path: { job_id: id } });
  const raw = await legacy.getJobRawMdResultApiParsingJobJobIdResultRawMarkdownGet({ client, throwOnError: true, path: { job_id: id }, parseAs: 'text' });
  return {
    job_id: id,
    statuses,
    markdown: md.data.markdown,
    text: txt.data.text,
    json_pages: (js.data.pages ?? []).length,
    job_metadata: md.data.job_metadata,
    raw_content_type: raw.response.headers.get('content-type'),
    raw_markdown: typeof raw.data === 'string' ? raw.data : null,
  };
});

// 6. An unknown job on the legacy route: a 404 with FastAPI's {"detail": ...}.
out.legacy_missing_job = await attempt(async () => {
  const r = await legacy.getJobApiParsingJobJobIdGet({ client, path: { job_id: '00000000-0000-4000-8000-000000000000' } });
  return { status: r.response.status, body: r.error ?? r.data ?? null };
});

out.wire = wire;
process.stdout.write(JSON.stringify(out) + '\n');
