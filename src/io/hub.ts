/**
 * Hugging Face Hub access: the file listing through @huggingface/hub, downloads as HTTP Range reads
 * of `<hub>/<repo>/resolve/<revision>/<path>`. The token is kept in memory by the caller and sent only
 * to the Hub host (`hubBaseUrl`); a CDN redirect never receives it. 401/403/404/network failures map
 * to distinct typed errors.
 */
import { HubApiError, listFiles } from '@huggingface/hub';
import { HubError, hubErrorForStatus, networkError } from './errors.ts';
import type { ModelFileInfo, ModelFiles } from './files.ts';
import { HttpByteSource, type ByteSource } from './source.ts';

export const DEFAULT_HUB_URL = 'https://huggingface.co';

export interface HubOptions {
  revision?: string;
  /** Access token (`hf_...`), needed for gated models such as bigcode/starcoderbase-1b. */
  token?: string;
  /** Hub base URL; tests point it at a local server. */
  hubBaseUrl?: string;
  fetch?: typeof fetch;
  /** Retries per range read after a network failure. */
  retries?: number;
  retryDelayMs?: number;
}

export class HubModelFiles implements ModelFiles {
  readonly label: string;
  readonly revision: string;
  private readonly base: string;
  private listing: Map<string, ModelFileInfo> | undefined;

  constructor(
    readonly repo: string,
    private readonly options: HubOptions = {},
  ) {
    this.label = repo;
    this.revision = options.revision ?? 'main';
    this.base = (options.hubBaseUrl ?? DEFAULT_HUB_URL).replace(/\/+$/, '');
    if (!/^[\w.-]+\/[\w.-]+$/.test(repo)) {
      throw new HubError(
        'not-found',
        repo,
        undefined,
        `"${repo}" is not a Hugging Face repository id.`,
        'Use the form owner/name, e.g. WizardLMTeam/WizardCoder-1B-V1.0.',
      );
    }
  }

  fileUrl(path: string): string {
    return `${this.base}/${this.repo}/resolve/${encodeURIComponent(this.revision)}/${path
      .split('/')
      .map(encodeURIComponent)
      .join('/')}`;
  }

  async list(): Promise<ModelFileInfo[]> {
    if (this.listing) return [...this.listing.values()];
    const listing = new Map<string, ModelFileInfo>();
    try {
      for await (const entry of listFiles({
        repo: { type: 'model', name: this.repo },
        revision: this.revision,
        recursive: true,
        hubUrl: this.base,
        accessToken: this.options.token,
        fetch: this.options.fetch,
      })) {
        if (entry.type !== 'file') continue;
        listing.set(entry.path, { path: entry.path, size: entry.size, hash: entry.lfs?.oid ?? entry.oid });
      }
    } catch (err) {
      throw this.mapError(err, `${this.base}/api/models/${this.repo}/tree/${this.revision}`);
    }
    this.listing = listing;
    return [...listing.values()];
  }

  async open(path: string): Promise<ByteSource> {
    const known = this.listing?.get(path);
    return HttpByteSource.open(this.fileUrl(path), {
      token: this.options.token,
      tokenHost: new URL(this.base).host,
      size: known?.size,
      fetch: this.options.fetch,
      retries: this.options.retries,
      retryDelayMs: this.options.retryDelayMs,
      displayName: `${this.repo}/${path}`,
    });
  }

  private mapError(err: unknown, url: string): unknown {
    if (err instanceof HubApiError) return hubErrorForStatus(url, err.statusCode, this.repo);
    if (err instanceof HubError) return err;
    if (err instanceof TypeError && /token/i.test(err.message)) {
      return new HubError(
        'unauthorized',
        url,
        undefined,
        `The access token is malformed: ${err.message}.`,
        'Hugging Face tokens start with "hf_"; copy it again from huggingface.co/settings/tokens.',
      );
    }
    return networkError(url, err);
  }
}
