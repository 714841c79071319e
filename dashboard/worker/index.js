// The dashboard's Worker. Static assets (dashboard/dist) are answered by Cloudflare before this code
// runs; it sees only what they do not hold:
//   /data/<key>   published files (results Parquet, sample artifacts): R2 key public/<key>
//   /paper/...    the rendered paper (Quarto's paper/_site, uploaded by `make deploy`): R2 key
//                 public/paper/<path>, a folder's index.html for a path ending in /; 404 until published
//   anything else the build files too large for static assets (> 25 MiB, the DuckDB wasm): R2 key
//                 public/site/<path>, moved there by scripts/finish-build.js
// Only keys under public/ are reachable: no listing, no `..` (plain or percent-encoded), no other key.
// R2 answers Range (206, what DuckDB sends for Parquet) and conditional requests (ETag → 304).

const PUBLIC = "public/";
const IMMUTABLE = "public, max-age=31536000, immutable"; // site files carry a version or hash in their path
const CHANGEABLE = "public, max-age=300, must-revalidate"; // published results change when republished
// For objects uploaded without a content type: browsers compile wasm only when served as application/wasm
const TYPES = {
  wasm: "application/wasm", parquet: "application/vnd.apache.parquet", js: "text/javascript", json: "application/json",
  html: "text/html; charset=utf-8", css: "text/css", svg: "image/svg+xml"
};

export default {
  async fetch(request, env) {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return text(405, "method not allowed", {allow: "GET, HEAD"});
    }
    const path = safePath(new URL(request.url).pathname);
    if (path === null) return text(400, "bad path");
    if (path === "/paper") return new Response(null, {status: 301, headers: {location: "/paper/"}});
    if (path.startsWith("/paper/")) {
      // the paper changes when it is republished: revalidated like the results, never immutable
      const key = `${PUBLIC}${path.slice(1)}${path.endsWith("/") ? "index.html" : ""}`;
      const found = await object(request, env, key, CHANGEABLE);
      return found.status === 404 ? text(404, "the paper is not published yet (make deploy publishes it)") : found;
    }
    if (path.startsWith("/data/")) return object(request, env, PUBLIC + path.slice("/data/".length), CHANGEABLE);
    return object(request, env, `${PUBLIC}site${path}`, IMMUTABLE);
  }
};

// The decoded path, or null when it could leave its folder: `..` or `.` segments, empty segments (`//`),
// backslashes, control characters, or bad percent-encoding. The URL parser already folds a literal
// /../, but an encoded slash (%2f) or dot (%2e) arrives here still encoded.
export function safePath(raw) {
  let path;
  try {
    path = decodeURIComponent(raw);
  } catch {
    return null;
  }
  const segments = path.split("/").slice(1);
  const bad = segments.some((s, i) => s === "." || s === ".." || (s === "" && i < segments.length - 1));
  return bad || /[\\\x00-\x1f]/.test(path) || !path.startsWith("/") ? null : path;
}

async function object(request, env, key, cacheControl) {
  if (key.endsWith("/")) return text(404, "not found"); // a folder: no listing
  const options = {onlyIf: request.headers, range: request.headers};
  let found;
  try {
    found = await env.BUCKET.get(key, options);
  } catch {
    // A range R2 cannot satisfy (past the end of the object)
    const head = await env.BUCKET.head(key);
    if (head === null) return text(404, "not found");
    return text(416, "range not satisfiable", {"content-range": `bytes */${head.size}`});
  }
  if (found === null) return text(404, "not found");
  const headers = new Headers();
  found.writeHttpMetadata(headers);
  if (!headers.has("content-type")) headers.set("content-type", TYPES[key.split(".").pop()] ?? "application/octet-stream");
  headers.set("etag", found.httpEtag);
  headers.set("cache-control", cacheControl);
  headers.set("accept-ranges", "bytes");
  if (!("body" in found)) {
    // onlyIf failed: If-None-Match matched (the client's copy is current) or If-Match did not
    return new Response(null, {status: request.headers.has("if-none-match") ? 304 : 412, headers});
  }
  const body = request.method === "HEAD" ? null : found.body;
  const range = request.headers.has("range") ? span(found.range, found.size) : null;
  if (range === null) {
    headers.set("content-length", String(found.size));
    return new Response(body, {status: 200, headers});
  }
  headers.set("content-range", `bytes ${range.start}-${range.end}/${found.size}`);
  headers.set("content-length", String(range.end - range.start + 1));
  return new Response(body, {status: 206, headers});
}

// R2's answered range ({offset, length} or {suffix}) as first and last byte.
function span(range, size) {
  if (!range) return null;
  if ("suffix" in range && range.suffix !== undefined) return {start: Math.max(0, size - range.suffix), end: size - 1};
  const start = range.offset ?? 0;
  const end = range.length === undefined ? size - 1 : Math.min(size - 1, start + range.length - 1);
  return {start, end};
}

function text(status, message, extra = {}) {
  return new Response(`${message}\n`, {status, headers: {"content-type": "text/plain; charset=utf-8", ...extra}});
}
