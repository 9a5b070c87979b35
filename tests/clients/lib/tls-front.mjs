// An HTTPS reverse proxy before vppd, as a deployment would put one: @microsoft/microsoft-graph-client
// authenticates, and parses an absolute @odata.nextLink, only for https:// URLs. It forwards each
// request to vppd with X-Forwarded-Proto: https (so vppd's nextLinks name this https origin) and
// records the request headers vppd received, so tests can see what the client sent.
//
// The certificate comes from servers.py (CLIENTS_TLS_CERT/KEY); the test process trusts it
// through NODE_EXTRA_CA_CERTS, which servers.py sets. Limits: 1 MiB bodies, 15 s per exchange.
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";

const MAX_BODY = 1 << 20;
const TIMEOUT_MS = 15_000;

export async function startTlsFront(targetUrl) {
  const target = new URL(targetUrl);
  const seen = []; // {method, url, headers} as forwarded
  const server = https.createServer({
    cert: readFileSync(process.env.CLIENTS_TLS_CERT),
    key: readFileSync(process.env.CLIENTS_TLS_KEY),
  }, (req, res) => {
    const chunks = [];
    let size = 0;
    req.setTimeout(TIMEOUT_MS, () => req.destroy(new Error("request timed out")));
    req.on("data", (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        res.writeHead(413).end();
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => {
      const headers = { ...req.headers, "x-forwarded-proto": "https" };
      seen.push({ method: req.method, url: req.url, headers: req.headers });
      const upstream = http.request({
        host: target.hostname, port: target.port, method: req.method, path: req.url, headers, timeout: TIMEOUT_MS,
      }, (up) => {
        res.writeHead(up.statusCode, up.headers);
        up.pipe(res);
      });
      upstream.on("timeout", () => upstream.destroy(new Error("vppd timed out")));
      upstream.on("error", (e) => {
        if (!res.headersSent) res.writeHead(502, { "Content-Type": "text/plain" });
        res.end(`tls-front: ${e.message}`);
      });
      upstream.end(Buffer.concat(chunks));
    });
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address();
  return {
    url: `https://127.0.0.1:${port}`,
    seen,
    close: () => new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    }),
  };
}
