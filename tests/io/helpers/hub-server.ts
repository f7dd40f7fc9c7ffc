/**
 * A local stand-in for the Hugging Face Hub: the tree API (`/api/models/<repo>/tree/<rev>`) and file
 * downloads (`/<repo>/resolve/<rev>/<path>`) with HTTP Range, plus switches for gated repos, servers
 * that ignore Range, CDN redirects and connections dropped mid-body. Started inside each test file.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRepo {
  files: Map<string, Uint8Array>;
  /** Token required (401 without a token, 403 with another one). */
  token?: string;
  /** Answer Range requests with 200 and the whole file. */
  ignoreRange?: boolean;
  /** Redirect downloads to /cdn/... on `localhost` (another host than 127.0.0.1). */
  redirectToCdn?: boolean;
  /** Drop the connection after this many body bytes, for the next `dropCount` downloads. */
  dropAfterBytes?: number;
  dropCount?: number;
  /** Answer the next `errorCount` range requests with HTTP 503. */
  errorCount?: number;
}

export interface RequestLog {
  host: string;
  path: string;
  range: string | undefined;
  authorization: string | undefined;
  status: number;
  bytes: number;
}

export class FakeHub {
  readonly repos = new Map<string, FakeRepo>();
  readonly log: RequestLog[] = [];
  private server: Server | undefined;
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  private send(
    req: IncomingMessage,
    res: ServerResponse,
    status: number,
    body: Uint8Array | string,
    headers = {},
  ): void {
    const buf =
      typeof body === 'string'
        ? Buffer.from(body)
        : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    this.log.push({
      host: req.headers.host ?? '',
      path: req.url ?? '',
      range: req.headers.range,
      authorization: req.headers.authorization,
      status,
      bytes: buf.byteLength,
    });
    res.writeHead(status, { 'Content-Length': String(buf.byteLength), ...headers });
    res.end(buf);
  }

  private authorize(req: IncomingMessage, res: ServerResponse, repo: FakeRepo): boolean {
    if (!repo.token) return true;
    const auth = req.headers.authorization;
    if (!auth) {
      this.send(req, res, 401, JSON.stringify({ error: 'Access to model is restricted.' }), {
        'Content-Type': 'application/json',
      });
      return false;
    }
    if (auth !== `Bearer ${repo.token}`) {
      this.send(req, res, 403, JSON.stringify({ error: 'Gated model: accept the conditions.' }), {
        'Content-Type': 'application/json',
      });
      return false;
    }
    return true;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const tree = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)$/.exec(url.pathname);
    if (tree) {
      const repo = this.repos.get(decodeURIComponent(tree[1]));
      if (!repo)
        return this.send(req, res, 404, JSON.stringify({ error: 'Repository not found' }), {
          'Content-Type': 'application/json',
        });
      if (!this.authorize(req, res, repo)) return;
      const items = [...repo.files].map(([path, data]) => ({
        type: 'file',
        path,
        size: data.byteLength,
        oid: `oid-${path}`,
      }));
      return this.send(req, res, 200, JSON.stringify(items), { 'Content-Type': 'application/json' });
    }
    const cdn = /^\/cdn\/([^/]+\/[^/]+)\/(.+)$/.exec(url.pathname);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const m = cdn
      ? { repo: cdn[1], path: cdn[2] }
      : resolve
        ? { repo: resolve[1], path: resolve[3] }
        : undefined;
    if (!m) return this.send(req, res, 404, 'not found');
    const repo = this.repos.get(decodeURIComponent(m.repo));
    const path = m.path.split('/').map(decodeURIComponent).join('/');
    const data = repo?.files.get(path);
    if (!repo || !data) return this.send(req, res, 404, 'Entry not found');
    if (!cdn && !this.authorize(req, res, repo)) return;
    if (!cdn && repo.redirectToCdn) {
      this.log.push({
        host: req.headers.host ?? '',
        path: req.url ?? '',
        range: req.headers.range,
        authorization: req.headers.authorization,
        status: 302,
        bytes: 0,
      });
      res.writeHead(302, { Location: `http://localhost:${this.port}/cdn/${m.repo}/${m.path}` });
      res.end();
      return;
    }
    if ((repo.errorCount ?? 0) > 0 && req.headers.range) {
      repo.errorCount = (repo.errorCount ?? 0) - 1;
      return this.send(req, res, 503, 'Service Unavailable');
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (!range || repo.ignoreRange) return this.send(req, res, 200, data);
    const start = Number(range[1]);
    const end = Math.min(range[2] ? Number(range[2]) : data.byteLength - 1, data.byteLength - 1);
    if (start >= data.byteLength) {
      return this.send(req, res, 416, '', { 'Content-Range': `bytes */${data.byteLength}` });
    }
    const body = data.subarray(start, end + 1);
    if (
      repo.dropAfterBytes !== undefined &&
      (repo.dropCount ?? 0) > 0 &&
      body.byteLength > repo.dropAfterBytes
    ) {
      repo.dropCount = (repo.dropCount ?? 0) - 1;
      this.log.push({
        host: req.headers.host ?? '',
        path: req.url ?? '',
        range: req.headers.range,
        authorization: req.headers.authorization,
        status: 206,
        bytes: -1,
      });
      res.writeHead(206, {
        'Content-Length': String(body.byteLength),
        'Content-Range': `bytes ${start}-${end}/${data.byteLength}`,
      });
      res.write(Buffer.from(body.subarray(0, repo.dropAfterBytes)));
      setTimeout(() => res.destroy(), 10);
      return;
    }
    this.send(req, res, 206, body, { 'Content-Range': `bytes ${start}-${end}/${data.byteLength}` });
  }
}
